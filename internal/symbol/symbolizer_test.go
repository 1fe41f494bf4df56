package symbol_test

import (
	"debug/elf"
	"debug/gosym"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/objfile"
	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/symbol"
	"github.com/cpuwhy/cpuwhy/test/containertest"
	"github.com/cpuwhy/cpuwhy/test/scenario"
)

func TestMain(m *testing.M) {
	containertest.Main(m)
}

// symbolValue returns the address as linked of a function symbol of the
// ELF file at path, from .symtab or .dynsym.
func symbolValue(t *testing.T, path, name string) uint64 {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, read := range []func() ([]elf.Symbol, error){f.Symbols, f.DynamicSymbols} {
		syms, _ := read()
		for _, s := range syms {
			if s.Name == name && s.Value != 0 {
				return s.Value
			}
		}
	}
	t.Fatalf("%s has no symbol %s", path, name)
	return 0
}

// goFuncEntry returns the entry of a Go function from the pclntab of the
// Go binary at path.
func goFuncEntry(t *testing.T, path, name string) uint64 {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data, err := f.Section(".gopclntab").Data()
	if err != nil {
		t.Fatal(err)
	}
	tab, err := gosym.NewTable(nil, gosym.NewLineTable(data, f.Section(".text").Addr))
	if err != nil {
		t.Fatal(err)
	}
	fn := tab.LookupFunc(name)
	if fn == nil {
		t.Fatalf("%s has no function %s", path, name)
	}
	return fn.Entry
}

// pcOf returns where the address vaddr (as linked in the object at
// hostPath) is in process pid, in the executable mapping of the module
// whose path ends in suffix: the inverse of the bias math under test,
// done the long way.
func pcOf(t *testing.T, pid int, suffix, hostPath string, vaddr uint64) (uint64, proc.Mapping) {
	t.Helper()
	f, err := elf.Open(hostPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var off uint64
	found := false
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && vaddr >= p.Vaddr && vaddr < p.Vaddr+p.Filesz {
			off, found = vaddr-p.Vaddr+p.Off, true
		}
	}
	if !found {
		t.Fatalf("%#x is in no segment of %s", vaddr, hostPath)
	}
	maps, err := proc.FS{}.Maps(pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range maps {
		name := strings.TrimSuffix(m.Path, " (deleted)")
		if strings.HasSuffix(name, suffix) && off >= m.Offset && off < m.Offset+(m.End-m.Start) {
			if !m.Exec() {
				t.Fatalf("offset %#x of %s is in non-executable mapping %+v", off, suffix, m)
			}
			return m.Start + off - m.Offset, m
		}
	}
	t.Fatalf("no mapping of %s holds offset %#x in %d", suffix, off, pid)
	return 0, proc.Mapping{}
}

func buildID(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	o, err := objfile.Parse(f, -1)
	if err != nil {
		t.Fatal(err)
	}
	return o.BuildID
}

func symbolize(t *testing.T, s *symbol.Symbolizer, pid int, pc uint64) symbol.Frame {
	t.Helper()
	f, err := s.Symbolize(pid, pc)
	if err != nil {
		t.Fatalf("Symbolize(%d, %#x): %v", pid, pc, err)
	}
	return f
}

func TestComputeOnHost(t *testing.T) {
	p := scenario.Build(t, "compute")
	pid := p.Start(t, nil).Process.Pid
	s := symbol.NewSymbolizer(symbol.Options{})
	v := symbolValue(t, p.Path, "crunch_numbers")
	pc, m := pcOf(t, pid, "/compute", p.Path, v+4)
	f := symbolize(t, s, pid, pc)
	if f.Function != "crunch_numbers" || filepath.Base(f.File) != "compute.c" || f.Line == 0 {
		t.Errorf("frame = %+v, want crunch_numbers in compute.c", f)
	}
	if f.Module != "compute" || f.Offset != pc-m.Start+m.Offset || f.BuildID != buildID(t, p.Path) || f.BuildID == "" {
		t.Errorf("frame = %+v, want module compute at file offset %#x, build-id %s", f, pc-m.Start+m.Offset, buildID(t, p.Path))
	}
	if !strings.HasPrefix(f.String(), "crunch_numbers (compute.c:") {
		t.Errorf("String() = %q", f)
	}
	if miss := s.MissingSymbols(); len(miss) != 0 {
		t.Errorf("MissingSymbols() = %+v, want none", miss)
	}
}

// TestLibcOnHost names an address in libc's recvfrom, which Debian's libc
// exports in .dynsym (its .symtab is in the -dbg package).
func TestLibcOnHost(t *testing.T) {
	p := scenario.Build(t, "busypoll")
	pid := p.Start(t, nil).Process.Pid
	libc := ""
	maps, err := proc.FS{}.Maps(pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range maps {
		if strings.Contains(filepath.Base(m.Path), "libc.so") {
			libc = m.Path
		}
	}
	if libc == "" {
		t.Fatalf("busypoll maps no libc: %+v", maps)
	}
	v := symbolValue(t, libc, "recvfrom")
	pc, _ := pcOf(t, pid, libc, libc, v+2)
	f := symbolize(t, symbol.NewSymbolizer(symbol.Options{}), pid, pc)
	if !strings.Contains(f.Function, "recvfrom") || f.Module != filepath.Base(libc) {
		t.Errorf("frame = %+v, want recvfrom in %s", f, filepath.Base(libc))
	}
}

// TestPLTStubNotInit: libnat.so's recvfrom@plt, where busypoll's
// profiles catch RecvFrom on its way to libc, follows the size-less _init
// of .init; it must not be named _init (it has no symbol: module+offset).
func TestPLTStubNotInit(t *testing.T) {
	p := scenario.Build(t, "busypoll")
	lib := p.Files["libnat.so"]
	f, err := elf.Open(lib)
	if err != nil {
		t.Fatal(err)
	}
	plt, init := f.Section(".plt"), f.Section(".init")
	f.Close()
	if plt == nil || init == nil || plt.Addr < init.Addr+init.Size {
		t.Fatalf("libnat.so has no .plt after .init: the test does not apply to this toolchain")
	}
	pid := p.Start(t, nil).Process.Pid
	s := symbol.NewSymbolizer(symbol.Options{})
	for _, tt := range []struct {
		vaddr uint64
		want  string
	}{
		{init.Addr + 4, "_init"},
		{plt.Addr + 0x20, ""}, // the second stub: recvfrom@plt or __errno_location@plt
	} {
		pc, _ := pcOf(t, pid, "/libnat.so", lib, tt.vaddr)
		if fr := symbolize(t, s, pid, pc); fr.Function != tt.want || fr.Module != "libnat.so" {
			t.Errorf("%#x of libnat.so: frame = %+v, want function %q", tt.vaddr, fr, tt.want)
		}
	}
}

func TestBusypollInContainer(t *testing.T) {
	p := scenario.Build(t, "busypoll")
	c := containertest.Start(t, containertest.Config{Program: p.Path, Files: p.Files})
	c.WaitReady(t, 10*time.Second)
	if _, err := os.Stat("/opt/vpnserver/libnat.so"); err == nil {
		t.Fatal("the host has /opt/vpnserver/libnat.so: the test would not show the root is used")
	}
	s := symbol.NewSymbolizer(symbol.Options{})

	v := symbolValue(t, p.Files["libnat.so"], "RecvFrom")
	pc, _ := pcOf(t, c.HostPID, "/opt/vpnserver/libnat.so", p.Files["libnat.so"], v+1)
	f := symbolize(t, s, c.HostPID, pc)
	if f.Function != "RecvFrom" || f.Module != "libnat.so" {
		t.Errorf("frame = %+v, want RecvFrom in libnat.so", f)
	}

	// The stripped main binary: no name, module and file offset instead,
	// and a hint carrying its build-id.
	entry := mainEntry(t, p.Path)
	pc, m := pcOf(t, c.HostPID, "/opt/vpnserver/vpnserver", p.Path, entry)
	f = symbolize(t, s, c.HostPID, pc)
	want := fmt.Sprintf("vpnserver+%#x", pc-m.Start+m.Offset)
	if f.Function != "" || f.String() != want {
		t.Errorf("frame = %+v (%s), want %s", f, f, want)
	}
	id := buildID(t, p.Path)
	miss := s.MissingSymbols()
	if len(miss) != 1 || miss[0].Module != "/opt/vpnserver/vpnserver" || miss[0].BuildID != id || id == "" ||
		!strings.Contains(miss[0].Hint, "-dbg") || !strings.Contains(miss[0].Hint, "--debug-dir") || !strings.Contains(miss[0].Hint, id[2:]) {
		t.Errorf("MissingSymbols() = %+v, want vpnserver with build-id %s and hints", miss, id)
	}
}

func mainEntry(t *testing.T, path string) uint64 {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return f.Entry
}

func TestCxxDemangled(t *testing.T) {
	p := scenario.Build(t, "cxxhot")
	pid := p.Start(t, nil).Process.Pid
	v := symbolValue(t, p.Path, "_ZN3vpn7Session4pumpEv")
	pc, _ := pcOf(t, pid, "/cxxhot", p.Path, v+8)
	f := symbolize(t, symbol.NewSymbolizer(symbol.Options{}), pid, pc)
	if f.Function != "vpn::Session::pump" || filepath.Base(f.File) != "session.cc" {
		t.Errorf("frame = %+v, want vpn::Session::pump in session.cc", f)
	}
}

func TestGoStripped(t *testing.T) {
	p := scenario.Build(t, "gostripped")
	if f, err := elf.Open(p.Path); err != nil {
		t.Fatal(err)
	} else {
		if f.Section(".symtab") != nil || f.Section(".debug_info") != nil {
			t.Fatal("gostripped has a .symtab or DWARF: it is not stripped")
		}
		f.Close()
	}
	pid := p.Start(t, nil).Process.Pid
	pc, _ := pcOf(t, pid, "/gostripped", p.Path, goFuncEntry(t, p.Path, "main.spin")+4)
	f := symbolize(t, symbol.NewSymbolizer(symbol.Options{}), pid, pc)
	if f.Function != "main.spin" || !strings.HasSuffix(f.File, "main.go") || f.Line == 0 {
		t.Errorf("frame = %+v, want main.spin in main.go", f)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestReplacedBinary symbolizes a process whose binary was deleted, or
// replaced by another file, after it started: only map_files still leads
// to what is mapped.
func TestReplacedBinary(t *testing.T) {
	compute := scenario.Build(t, "compute")
	idle := scenario.Build(t, "idle")
	for _, tt := range []struct {
		name    string
		replace func(path string) error
	}{
		{"deleted", os.Remove},
		{"replaced", func(path string) error {
			if err := os.Remove(path); err != nil {
				return err
			}
			copyFile(t, idle.Path, path)
			return nil
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "compute")
			copyFile(t, compute.Path, path)
			pid := scenario.Program{Name: "compute", Path: path}.Start(t, nil).Process.Pid
			v := symbolValue(t, path, "crunch_numbers")
			pc, m := pcOf(t, pid, "/compute", path, v)
			if err := tt.replace(path); err != nil {
				t.Fatal(err)
			}
			maps, err := proc.FS{}.Maps(pid)
			if err != nil {
				t.Fatal(err)
			}
			for _, mm := range maps {
				if mm.Start == m.Start {
					m = mm
				}
			}
			o, err := objfile.Open(proc.FS{}, pid, m)
			if err != nil {
				t.Fatal(err)
			}
			o.Close()
			if o.Via != "map_files" || o.BuildID != buildID(t, compute.Path) {
				t.Errorf("opened via %s with build-id %s, want map_files and %s", o.Via, o.BuildID, buildID(t, compute.Path))
			}
			f := symbolize(t, symbol.NewSymbolizer(symbol.Options{}), pid, pc)
			if f.Function != "crunch_numbers" || f.Module != "compute" {
				t.Errorf("frame = %+v, want crunch_numbers in compute", f)
			}
		})
	}
}

func run(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestSeparateSymbols strips compute and puts its symbols where a distro
// does: MiniDebugInfo (Fedora), a debug file by build-id in a --debug-dir,
// and a debuglink file beside the binary.
func TestSeparateSymbols(t *testing.T) {
	p := scenario.Build(t, "compute")
	v := symbolValue(t, p.Path, "crunch_numbers")
	id := buildID(t, p.Path)
	tests := []struct {
		name     string
		prepare  func(t *testing.T, dir string) symbol.Options // leaves dir/compute stripped
		wantLine bool
	}{
		{"minidebuginfo", func(t *testing.T, dir string) symbol.Options {
			// As Fedora's find-debuginfo does, keeping only the
			// function symbols .dynsym lacks.
			run(t, dir, "sh", "-c", `nm compute --format=posix --defined-only | awk '$2 == "T" || $2 == "t" { print $1 }' > keep &&
				objcopy --only-keep-debug compute debug &&
				objcopy -S --remove-section .gdb_index --remove-section .comment --keep-symbols=keep debug mini &&
				xz mini && strip --strip-all compute && objcopy --add-section .gnu_debugdata=mini.xz compute`)
			return symbol.Options{HostRoot: "-"}
		}, false},
		{"build-id in debug dir", func(t *testing.T, dir string) symbol.Options {
			debug := filepath.Join(dir, "debug")
			os.MkdirAll(filepath.Join(debug, ".build-id", id[:2]), 0o755)
			run(t, dir, "objcopy", "--only-keep-debug", "compute", filepath.Join(debug, ".build-id", id[:2], id[2:]+".debug"))
			run(t, dir, "strip", "--strip-all", "compute")
			return symbol.Options{HostRoot: "-", DebugDirs: []string{debug}}
		}, true},
		{"debuglink beside", func(t *testing.T, dir string) symbol.Options {
			run(t, dir, "objcopy", "--only-keep-debug", "compute", "compute.debug")
			run(t, dir, "strip", "--strip-all", "compute")
			run(t, dir, "objcopy", "--add-gnu-debuglink=compute.debug", "compute")
			return symbol.Options{HostRoot: "-"}
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "compute")
			copyFile(t, p.Path, path)
			opts := tt.prepare(t, dir)
			if f, err := elf.Open(path); err != nil {
				t.Fatal(err)
			} else {
				if f.Section(".symtab") != nil {
					t.Fatal("compute still has .symtab")
				}
				f.Close()
			}
			pid := scenario.Program{Name: "compute", Path: path}.Start(t, nil).Process.Pid
			pc, _ := pcOf(t, pid, "/compute", path, v+4)
			s := symbol.NewSymbolizer(opts)
			f := symbolize(t, s, pid, pc)
			if f.Function != "crunch_numbers" || (tt.wantLine && (filepath.Base(f.File) != "compute.c" || f.Line == 0)) {
				t.Errorf("frame = %+v, want crunch_numbers", f)
			}
			// Without the symbols' source the same address is unnamed.
			os.RemoveAll(filepath.Join(dir, "debug"))
			os.Remove(filepath.Join(dir, "compute.debug"))
			if tt.name != "minidebuginfo" {
				s2 := symbol.NewSymbolizer(symbol.Options{HostRoot: "-"})
				if f := symbolize(t, s2, pid, pc); f.Function != "" {
					t.Errorf("without debug file: frame = %+v, want unnamed", f)
				}
				if miss := s2.MissingSymbols(); len(miss) != 1 {
					t.Errorf("MissingSymbols() = %+v", miss)
				} else if tt.name == "debuglink beside" && !strings.Contains(miss[0].Hint, "compute.debug") {
					t.Errorf("hint %q does not name the debuglink file", miss[0].Hint)
				}
			}
		})
	}
}

// TestEvictionAndClose names an address with its line after its object's
// table was pushed out of a one-object cache by another object, and after
// Close: the object is read again.
func TestEvictionAndClose(t *testing.T) {
	p := scenario.Build(t, "compute")
	pid := p.Start(t, nil).Process.Pid
	pc, _ := pcOf(t, pid, "/compute", p.Path, symbolValue(t, p.Path, "crunch_numbers")+4)
	libc := ""
	maps, err := proc.FS{}.Maps(pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range maps {
		if strings.HasPrefix(filepath.Base(m.Path), "libc.so") {
			libc = m.Path
		}
	}
	libcPC, _ := pcOf(t, pid, libc, libc, symbolValue(t, libc, "malloc"))
	s := symbol.NewSymbolizer(symbol.Options{MaxObjects: 1})
	check := func(when string) {
		t.Helper()
		if f := symbolize(t, s, pid, pc); f.Function != "crunch_numbers" || filepath.Base(f.File) != "compute.c" || f.Line == 0 {
			t.Errorf("%s: frame = %+v, want crunch_numbers in compute.c", when, f)
		}
	}
	check("first")
	if f := symbolize(t, s, pid, libcPC); !strings.Contains(f.Function, "malloc") {
		t.Errorf("libc: frame = %+v, want malloc", f)
	}
	check("after eviction")
	s.Close()
	check("after Close")
	s.Close()
}

// TestSharedTables: Symbolizers one after another on a TableCache (the
// diagnoses of one agent) name the same addresses, the second without
// reading the objects again: the tables stay in the cache when the first
// is closed, and the cache holds no more than its bound. Each Symbolizer
// reports its own missing symbols only.
func TestSharedTables(t *testing.T) {
	p := scenario.Build(t, "compute")
	pid := p.Start(t, nil).Process.Pid
	pc, _ := pcOf(t, pid, "/compute", p.Path, symbolValue(t, p.Path, "crunch_numbers")+4)
	cache := symbol.NewTableCache(2)
	for i := range 3 {
		s := symbol.NewSymbolizer(symbol.Options{Tables: cache})
		if f := symbolize(t, s, pid, pc); f.Function != "crunch_numbers" || filepath.Base(f.File) != "compute.c" || f.Line == 0 {
			t.Errorf("symbolizer %d: frame = %+v, want crunch_numbers in compute.c", i, f)
		}
		if miss := s.MissingSymbols(); len(miss) != 0 {
			t.Errorf("symbolizer %d: missing %+v", i, miss)
		}
		s.Close()
		if cache.Len() != 1 {
			t.Errorf("after symbolizer %d: %d tables cached, want compute's", i, cache.Len())
		}
	}
	// A new symbolizer over a full cache evicts: the bound holds.
	maps, err := proc.FS{}.Maps(pid)
	if err != nil {
		t.Fatal(err)
	}
	s := symbol.NewSymbolizer(symbol.Options{Tables: cache})
	for _, m := range maps {
		if m.Exec() && strings.HasPrefix(m.Path, "/") {
			symbolize(t, s, pid, m.Start)
		}
	}
	s.Close()
	if cache.Len() > 2 {
		t.Errorf("%d tables cached, over the bound of 2", cache.Len())
	}
}
