package symbol

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ulikunitz/xz"

	"github.com/cpuwhy/cpuwhy/internal/objfile"
	"github.com/cpuwhy/cpuwhy/test/privtest"
)

func TestDemangle(t *testing.T) {
	tests := map[string]string{
		"_ZN3vpn7Session4pumpEv":                 "vpn::Session::pump",
		"_ZN3vpn7SessionC2Em":                    "vpn::Session::Session",
		"_ZNSt6vectorIiSaIiEE9push_backERKi":     "std::vector::push_back",
		"_ZN4core3fmt5write17h0123456789abcdefE": "core::fmt::write",
		"_RNvCs15kBYyAo9fc_7mycrate7example":     "mycrate::example",
		"crunch_numbers":                         "crunch_numbers",
		"main.spin":                              "main.spin",
		"_Z":                                     "_Z",
		"_ZN3vpn7Session4pumpEv.cold":            "vpn::Session::pump",
	}
	for in, want := range tests {
		if got := Demangle(in); got != want {
			t.Errorf("Demangle(%q) = %q, want %q", in, got, want)
		}
	}
}

type testSym struct {
	addr, size uint64
	name       string
	end        uint64
}

// testTable makes a table of the given symbols, in that order.
func testTable(syms ...testSym) *table {
	tab := &table{linesDone: true, strtabs: [][]byte{{0}}}
	for _, s := range syms {
		tab.syms = append(tab.syms, sym{addr: s.addr, size: s.size, name: uint32(len(tab.strtabs[0])), ord: uint32(len(tab.syms)), end: s.end})
		tab.strtabs[0] = append(append(tab.strtabs[0], s.name...), 0)
	}
	tab.finish()
	return tab
}

func TestLookupSizes(t *testing.T) {
	tab := testTable([]testSym{{0x1000, 0x10, "sized", 0}, {0x1000, 0, "alias", 0}, {0x1000, 0x10, "same size, later", 0}, {0x1100, 0, "unsized", 0}, {0x2000, 0x10, "last", 0},
		// _init in .init (0x3000-0x3017), then .plt stubs with no symbol.
		{0x3000, 0, "_init", 0x3017}, {0x3100, 0, "frame_dummy", 0x3200}}...)
	tests := map[uint64]string{0xfff: "", 0x1000: "sized", 0x100f: "sized", 0x1010: "", 0x1100: "unsized", 0x1fff: "unsized", 0x2010: "",
		0x3000: "_init", 0x3016: "_init", 0x3017: "", 0x3040: "", 0x3100: "frame_dummy", 0x31ff: "frame_dummy", 0x3200: ""}
	for v, want := range tests {
		if got, _, _ := tab.lookup(v); got != want {
			t.Errorf("lookup(%#x) = %q, want %q", v, got, want)
		}
	}
}

// seedObject compiles a tiny C object with symbols and DWARF, for the
// fuzzers' corpus; nil when gcc is missing.
func seedObject(f *testing.F) []byte {
	dir := f.TempDir()
	src := filepath.Join(dir, "a.c")
	os.WriteFile(src, []byte("int hot(int x) { return x * 3; }\nint main(void) { return hot(1); }\n"), 0o644)
	if err := exec.Command("gcc", "-g", "-O1", "-o", filepath.Join(dir, "a"), src).Run(); err != nil {
		return nil
	}
	data, _ := os.ReadFile(filepath.Join(dir, "a"))
	return data
}

// FuzzELF opens arbitrary bytes as an object and reads every source of
// names it may hold: nothing may panic, and the caps bound allocations.
func FuzzELF(f *testing.F) {
	if data := seedObject(f); data != nil {
		f.Add(data)
	}
	f.Add([]byte("\x7fELF\x02\x01\x01\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := objfile.Parse(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		tab := loadTable(o, nil)
		for _, v := range []uint64{0, 0x1000, 0x1139, 0x401000} {
			tab.lookup(v)
		}
		for _, s := range tab.syms {
			tab.lookup(s.addr)
		}
	})
}

func FuzzMiniDebugInfo(f *testing.F) {
	if data := seedObject(f); data != nil {
		var b bytes.Buffer
		w, _ := xz.NewWriter(&b)
		w.Write(data)
		w.Close()
		f.Add(b.Bytes())
	}
	f.Add([]byte("\xfd7zXZ\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// A smaller cap than MaxMiniDebugInfo keeps the fuzzer fast; the
		// cap itself is what TestMiniDebugInfoCap checks.
		o, err := parseMiniDebugInfo(data, 1<<20)
		if err != nil {
			return
		}
		tab := &table{}
		tab.addELFSymbols(o, "")
		tab.finish()
	})
}

func FuzzPclntab(f *testing.F) {
	if exe, err := os.Executable(); err == nil {
		if o, err := objfile.OpenInRoot("/", exe); err == nil {
			if data, err := o.Section(".gopclntab"); err == nil && len(data) > 0 {
				f.Add(data[:min(len(data), 1<<14)])
			}
			o.Close()
		}
	}
	f.Add([]byte{0xf1, 0xff, 0xff, 0xff, 0, 0, 1, 8})
	f.Fuzz(func(t *testing.T, data []byte) {
		tab, err := parsePclntab(data, 0x401000)
		if err != nil {
			return
		}
		for _, pc := range []uint64{0x401000, 0x401100, 0x500000} {
			safeGoPCToLine(tab, pc)
		}
	})
}

// TestMiniDebugInfoCap feeds an xz stream that expands past the cap.
func TestMiniDebugInfoCap(t *testing.T) {
	var b bytes.Buffer
	w, _ := xz.NewWriter(&b)
	w.Write(make([]byte, 3<<20))
	w.Close()
	if _, err := parseMiniDebugInfo(b.Bytes(), 1<<20); !errors.Is(err, objfile.ErrTooLarge) {
		t.Errorf("err = %v, want ErrTooLarge", err)
	}
	if _, err := parseMiniDebugInfo(b.Bytes(), 4<<20); !errors.Is(err, objfile.ErrMalformed) {
		t.Errorf("zeros: err = %v, want ErrMalformed", err)
	}
}

// FuzzSymtab reads arbitrary bytes as a symbol table and its string
// table, in both classes and byte orders: nothing may panic, and what is
// kept must be a defined function with a name in the table.
func FuzzSymtab(f *testing.F) {
	if data := seedObject(f); data != nil {
		if e, err := elf.NewFile(bytes.NewReader(data)); err == nil {
			s, str := e.Section(".symtab"), e.Section(".strtab")
			if s != nil && str != nil {
				d1, _ := s.Data()
				d2, _ := str.Data()
				f.Add(d1, d2)
			}
		}
	}
	f.Add(make([]byte, 48), []byte("\x00f\x00"))
	f.Fuzz(func(t *testing.T, data, strtab []byte) {
		for _, class := range []elf.Class{elf.ELFCLASS32, elf.ELFCLASS64} {
			for _, order := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
				syms, _, err := appendFuncSymbols(nil, data, strtab, class, order, 0, 4, nil)
				if err != nil {
					continue
				}
				if len(syms) > 4 {
					t.Fatalf("%d symbols past the limit of 4", len(syms))
				}
				tab := &table{syms: syms, strtabs: [][]byte{strtab}, linesDone: true}
				tab.finish()
				for _, s := range tab.syms {
					if s.addr == 0 || tab.name(s) == "" {
						t.Fatalf("kept %+v named %q", s, tab.name(s))
					}
					tab.lookup(s.addr)
				}
			}
		}
	})
}

// BenchmarkLoadTable reads the function symbols of the host libc's debug
// file (lines are not read until asked for).
func BenchmarkLoadTable(b *testing.B) {
	p := libcDebugFile(&testing.T{})
	if p == "" {
		b.Skip("no libc debug file")
	}
	for b.Loop() {
		obj, err := objfile.OpenInRoot("/", p)
		if err != nil {
			b.Fatal(err)
		}
		loadTable(obj, nil).close()
	}
}

// TestGoExternalLinking names the functions of a cgo binary linked by the
// C toolchain, whose .text starts with C start-up code before Go's
// runtime.text (pclntab's addresses count from the latter), with and
// without its symbol table.
func TestGoExternalLinking(t *testing.T) {
	if _, err := exec.LookPath("gcc"); err != nil {
		privtest.Require(t, "gcc is not installed")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module m\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "main.go"), []byte(`package main

// int twice(int x) { return 2 * x; }
import "C"

import "fmt"

//go:noinline
func work(n int) int { return int(C.twice(C.int(n))) + 1 }

func main() { fmt.Println(work(3)) }
`), 0o644)
	cmd := exec.Command("go", "build", "-ldflags=-linkmode=external", "-o", "prog", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=", "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	prog := filepath.Join(dir, "prog")
	run := exec.Command("objcopy", "--strip-all", prog, prog+".stripped")
	if out, err := run.CombinedOutput(); err != nil {
		t.Fatalf("objcopy: %v\n%s", err, out)
	}
	e, err := elf.Open(prog)
	if err != nil {
		t.Fatal(err)
	}
	var work, text uint64
	syms, _ := e.Symbols()
	for _, s := range syms {
		switch s.Name {
		case "main.work":
			work = s.Value
		case "runtime.text":
			text = s.Value
		}
	}
	textSec := e.Section(".text").Addr
	e.Close()
	if work == 0 || text == textSec {
		t.Fatalf("main.work at %#x, runtime.text %#x, .text %#x: the layout does not test anything", work, text, textSec)
	}
	for _, path := range []string{prog, prog + ".stripped"} {
		obj, err := objfile.OpenInRoot("/", path)
		if err != nil {
			t.Fatal(err)
		}
		tab := loadTable(obj, nil)
		if fn, file, line := tab.lookup(work + 4); fn != "main.work" || filepath.Base(file) != "main.go" || line != 9 {
			t.Errorf("%s: lookup(main.work+4) = %s %s:%d, want main.work main.go:9", filepath.Base(path), fn, file, line)
		}
		tab.close()
	}
}
