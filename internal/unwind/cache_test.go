package unwind

import (
	"debug/elf"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cpuwhy/cpuwhy/internal/objfile"
	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/test/scenario"
)

// counted builds the Spaces of process pid through c, counting the
// objects opened by path.
type counted struct {
	pid    int
	opened map[string]int
	fail   map[string]bool // paths whose open fails
}

func (o *counted) open(m proc.Mapping) (*elf.File, error) {
	path := strings.TrimSuffix(m.Path, " (deleted)")
	o.opened[path]++
	if o.fail[path] {
		return nil, errors.New("refused by the test")
	}
	f, err := objfile.Open(proc.FS{}, o.pid, m)
	if err != nil {
		return nil, err
	}
	return f.ELF, nil
}

func (o *counted) space(t *testing.T, c *Cache) *Space {
	t.Helper()
	maps, err := proc.FS{}.Maps(o.pid)
	if err != nil {
		t.Fatal(err)
	}
	id := func(m proc.Mapping) (objfile.Key, error) { return objfile.Identify(proc.FS{}, o.pid, m) }
	s, errs := c.NewSpace(maps, id, o.open, ProcessMemory{Pid: o.pid})
	for _, err := range errs {
		if !o.fail[strings.TrimPrefix(strings.SplitN(err.Error(), ":", 2)[0], "opening ")] {
			t.Errorf("NewSpace: %v", err)
		}
	}
	return s
}

// execObjects lists the files process pid maps executable.
func execObjects(t *testing.T, pid int) []string {
	t.Helper()
	maps, err := proc.FS{}.Maps(pid)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range maps {
		if m.Exec() && strings.HasPrefix(m.Path, "/") {
			out = append(out, m.Path)
		}
	}
	return out
}

// sameTables reports whether a and b give the start of each executable
// file mapping of pid the same table (the same object in memory) and
// bias.
func sameTables(t *testing.T, pid int, a, b *Space) bool {
	t.Helper()
	maps, err := proc.FS{}.Maps(pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range maps {
		if !m.Exec() || !strings.HasPrefix(m.Path, "/") {
			continue
		}
		ta, ba, _ := a.Lookup(m.Start)
		tb, bb, _ := b.Lookup(m.Start)
		if ta == nil || ta != tb || ba != bb {
			return false
		}
	}
	return true
}

// The Spaces of one Cache read each object's CFI once: a second Space of
// the process, and a Space of another process running the same files,
// open nothing and use the same tables. A copy of the program, the same
// bytes in another file, is another object; an object whose open failed
// is tried again by the next Space, not remembered.
func TestCacheSharesTables(t *testing.T) {
	p := scenario.Build(t, "busypoll")
	pid := p.Start(t, nil).Process.Pid
	requirePtrace(t, pid)
	objects := execObjects(t, pid)
	if len(objects) < 4 { // vpnserver, libnat.so, libc, ld.so
		t.Fatalf("busypoll maps %d objects executable: %v", len(objects), objects)
	}
	c := NewCache(64 << 20)
	o := &counted{pid: pid, opened: map[string]int{}}
	first := o.space(t, c)
	for _, path := range objects {
		if o.opened[path] != 1 {
			t.Errorf("first Space: %s opened %d times, want 1", path, o.opened[path])
		}
	}
	if c.Len() != len(objects) || c.Bytes() <= 0 {
		t.Errorf("after the first Space: %d objects, %d bytes cached; want %d objects", c.Len(), c.Bytes(), len(objects))
	}
	second := o.space(t, c)
	if !sameTables(t, pid, first, second) {
		t.Error("the second Space of the process has other tables than the first")
	}
	for path, n := range o.opened {
		if n != 1 {
			t.Errorf("second Space: %s opened %d times in all, want 1", path, n)
		}
	}

	other := &counted{pid: p.Start(t, nil).Process.Pid, opened: map[string]int{}}
	other.space(t, c)
	if len(other.opened) != 0 {
		t.Errorf("another process of the same files opened %v", other.opened)
	}

	// A copy: the same path inside its directory, other files.
	dir := t.TempDir()
	for _, src := range []string{p.Path, p.Files["libnat.so"]} {
		copyFile(t, src, filepath.Join(dir, filepath.Base(src)))
	}
	cp := scenario.Program{Name: p.Name, Path: filepath.Join(dir, filepath.Base(p.Path))}
	copied := &counted{pid: cp.Start(t, nil).Process.Pid, opened: map[string]int{}}
	copied.space(t, c)
	for _, path := range []string{cp.Path, filepath.Join(dir, "libnat.so")} {
		if copied.opened[path] != 1 {
			t.Errorf("a copy of the program: %s opened %d times, want 1 (opened: %v)", path, copied.opened[path], copied.opened)
		}
	}
	if len(copied.opened) != 2 {
		t.Errorf("a copy of the program opened %v, want its two files alone", copied.opened)
	}

	// An open that fails leaves no entry: the next Space opens again.
	fresh := NewCache(64 << 20)
	failing := &counted{pid: pid, opened: map[string]int{}, fail: map[string]bool{p.Files["libnat.so"]: true}}
	failing.space(t, fresh)
	failing.space(t, fresh)
	if n := failing.opened[p.Files["libnat.so"]]; n != 2 || fresh.Len() != len(objects)-1 {
		t.Errorf("an object that failed to open: opened %d times by two Spaces (want 2), %d objects cached (want %d)", n, fresh.Len(), len(objects)-1)
	}
}

// A Cache keeps at most its bytes: the least recently used objects go
// first, and an object bigger than the whole bound is used and not kept.
func TestCacheBound(t *testing.T) {
	p := scenario.Build(t, "busypoll")
	pid := p.Start(t, nil).Process.Pid
	requirePtrace(t, pid)
	objects := execObjects(t, pid)
	// The bytes of each object, as a Cache without bound counts them.
	all := NewCache(1 << 40)
	(&counted{pid: pid, opened: map[string]int{}}).space(t, all)
	size := map[string]int64{}
	var total, biggest int64
	var big string
	maps, _ := proc.FS{}.Maps(pid)
	for _, path := range objects {
		for _, m := range maps {
			if m.Path != path {
				continue
			}
			k, err := objfile.Identify(proc.FS{}, pid, m)
			if err != nil {
				t.Fatal(err)
			}
			obj, ok := all.c.Get(k)
			if !ok {
				t.Fatalf("%s not cached", path)
			}
			size[path] = obj.bytes()
			break
		}
		total += size[path]
		if size[path] > biggest {
			biggest, big = size[path], path
		}
	}
	t.Logf("tables' bytes: %v", size)
	if all.Bytes() != total {
		t.Errorf("cache of every object: %d bytes, objects %d", all.Bytes(), total)
	}
	// libc's table is the biggest, bigger than the others together (208
	// KiB against 19 on Debian 12, ld.so's 18): a bound of what the others
	// take keeps them and never libc.
	if biggest <= total-biggest {
		t.Fatalf("the biggest table, %s's, %d bytes, is not bigger than the others' %d: the test needs another bound", big, biggest, total-biggest)
	}
	c := NewCache(total - biggest)
	o := &counted{pid: pid, opened: map[string]int{}}
	o.space(t, c)
	o.space(t, c)
	if o.opened[big] != 2 || c.Len() != len(objects)-1 || c.Bytes() != total-biggest {
		t.Errorf("bound %d below %s's %d bytes: opened %d times by two Spaces (want 2), %d objects and %d bytes kept (want %d and %d)",
			total-biggest, big, biggest, o.opened[big], c.Len(), c.Bytes(), len(objects)-1, total-biggest)
	}
	for _, path := range objects {
		if path != big && o.opened[path] != 1 {
			t.Errorf("%s opened %d times, want 1", path, o.opened[path])
		}
	}
	// Room for the biggest alone: each Space evicts what it reads.
	c = NewCache(biggest)
	o = &counted{pid: pid, opened: map[string]int{}}
	o.space(t, c)
	if c.Bytes() > biggest {
		t.Errorf("bound %d: %d bytes kept", biggest, c.Bytes())
	}
	o.space(t, c)
	if c.Bytes() > biggest {
		t.Errorf("bound %d: %d bytes kept", biggest, c.Bytes())
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
