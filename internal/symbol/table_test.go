package symbol

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ulikunitz/xz"

	"github.com/cpuwhy/cpuwhy/internal/objfile"
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

func TestLookupSizes(t *testing.T) {
	tab := &table{syms: []sym{
		{addr: 0x1000, size: 0x10, name: "sized"}, {addr: 0x1000, name: "alias"}, {addr: 0x1100, name: "unsized"},
		{addr: 0x2000, size: 0x10, name: "last"},
		// _init in .init (0x3000-0x3017), then .plt stubs with no symbol.
		{addr: 0x3000, name: "_init", end: 0x3017}, {addr: 0x3100, name: "frame_dummy", end: 0x3200},
	}}
	tab.finish()
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
