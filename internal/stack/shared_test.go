package stack

import (
	"os"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"testing"

	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/unwind"
)

// The kernel's symbols are read once while the modules stay the same, and
// again when they change, when the modules cannot be read, or for another
// root.
func TestSharedKernelSymbols(t *testing.T) {
	root, other := t.TempDir(), t.TempDir()
	write := func(dir, name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const one = "ffffffff81000000 T _stext\nffffffff81001000 T do_one\n"
	const two = one + "ffffffffc0000000 t mod_fn\t[mod]\n"
	write(root, "kallsyms", one)
	write(root, "modules", "")
	write(other, "kallsyms", two)
	s := NewShared()
	var loaded atomic.Int32
	steps := []struct {
		name   string
		change func()
		fs     proc.FS
		reads  int
		syms   int
	}{
		{"first", func() {}, proc.FS{Root: root}, 1, 2},
		{"same modules", func() { write(root, "kallsyms", two) }, proc.FS{Root: root}, 1, 2},
		{"a module loaded", func() { write(root, "modules", "mod 16384 0 - Live 0xffffffffc0000000\n") }, proc.FS{Root: root}, 2, 3},
		{"unchanged", func() {}, proc.FS{Root: root}, 2, 3},
		{"another root", func() {}, proc.FS{Root: other}, 3, 3},
		{"a kernel without modules", func() {}, proc.FS{Root: other}, 3, 3},
		{"modules unreadable", func() {
			if err := os.Mkdir(filepath.Join(other, "modules"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, proc.FS{Root: other}, 4, 3},
		{"still unreadable", func() {}, proc.FS{Root: other}, 5, 3},
		{"back to the first root", func() {}, proc.FS{Root: root}, 6, 3},
		{"followed, no code loaded", func() { s.FollowKernelCode(func() int { return int(loaded.Load()) }) }, proc.FS{Root: root}, 6, 3},
		{"BPF programs loaded", func() { loaded.Add(1) }, proc.FS{Root: root}, 7, 3},
		{"none since", func() {}, proc.FS{Root: root}, 7, 3},
	}
	for _, st := range steps {
		st.change()
		k, err := s.KernelSymbols(st.fs)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if s.reads != st.reads || k.Len() != st.syms {
			t.Errorf("%s: %d readings, %d symbols; want %d and %d", st.name, s.reads, k.Len(), st.reads, st.syms)
		}
	}
	if _, err := s.KernelSymbols(proc.FS{Root: t.TempDir()}); err == nil {
		t.Error("no kallsyms: no error")
	}
}

// On the host, two resolvers of one Shared name kernel frames with one
// reading.
func TestSharedKernelSymbolsHost(t *testing.T) {
	s := NewShared()
	for range 2 {
		r, err := New(os.Getpid(), Options{Kernel: true, Shared: s})
		if err != nil {
			t.Fatal(err)
		}
		if r.ksyms == nil || r.ksyms.Len() == 0 && !r.ksyms.Restricted {
			t.Errorf("resolver without kernel symbols: %+v", r.ksyms)
		}
		r.Close()
	}
	if s.reads != 1 {
		t.Errorf("%d readings of kallsyms for two resolvers, want 1", s.reads)
	}
}

// Resolvers of one Shared unwind by the same tables, read by the first:
// the second reads none. With KeepUnwindTables(0) each reads its own.
func TestSharedUnwindTables(t *testing.T) {
	pc := uint64(reflect.ValueOf(namedFunction).Pointer())
	table := func(s *Shared) *unwind.Table {
		t.Helper()
		r, err := New(os.Getpid(), Options{FS: proc.FS{}, Runtimes: []Runtime{}, Shared: s})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		tab, _, ok := r.live().space.Lookup(pc)
		if !ok || tab == nil {
			t.Fatalf("no unwinding table for %#x of this test's binary", pc)
		}
		return tab
	}
	s := NewShared()
	first := table(s)
	objects, bytes := s.UnwindTables()
	if objects == 0 || bytes < first.Bytes() {
		t.Errorf("after one resolver: %d objects, %d bytes kept; want this binary's %d bytes at least", objects, bytes, first.Bytes())
	}
	if second := table(s); second != first {
		t.Error("a second resolver of the Shared read its own table")
	}
	if o, b := s.UnwindTables(); o != objects || b != bytes {
		t.Errorf("a second resolver changed what is kept: %d objects, %d bytes; was %d, %d", o, b, objects, bytes)
	}
	s.KeepUnwindTables(0)
	if table(s) == table(s) {
		t.Error("KeepUnwindTables(0): two resolvers share a table")
	}
	if o, b := s.UnwindTables(); o != 0 || b != 0 {
		t.Errorf("KeepUnwindTables(0): %d objects, %d bytes kept", o, b)
	}
}
