package objfile

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/proc"
)

func load(vaddr, off, filesz uint64) *elf.Prog {
	return &elf.Prog{ProgHeader: elf.ProgHeader{Type: elf.PT_LOAD, Vaddr: vaddr, Off: off, Filesz: filesz, Memsz: filesz}}
}

// TestPCToVaddr checks the load bias math on the layouts linkers make.
func TestPCToVaddr(t *testing.T) {
	// A PIE as GNU ld lays it out: text at file offset 0x1000, vaddr 0x1000;
	// data at offset 0x2db8, vaddr 0x3db8.
	pie := &File{ELF: &elf.File{Progs: []*elf.Prog{load(0, 0, 0x628), load(0x1000, 0x1000, 0x1d5), load(0x3db8, 0x2db8, 0x258)}}}
	// A non-PIE executable linked at 0x400000 (Go's default).
	exe := &File{ELF: &elf.File{Progs: []*elf.Prog{load(0x400000, 0, 0x9e000), load(0x49e000, 0x9e000, 0x1000)}}}
	// A library whose text segment does not start on a page of its own
	// (vaddr 0x1234 at offset 0x234): the mapping starts at offset 0.
	odd := &File{ELF: &elf.File{Progs: []*elf.Prog{load(0x1234, 0x234, 0x2000)}}}
	tests := []struct {
		name string
		f    *File
		m    proc.Mapping
		pc   uint64
		want uint64
		err  error
	}{
		{"pie text", pie, proc.Mapping{Start: 0x55d0a1a01000, End: 0x55d0a1a02000, Offset: 0x1000}, 0x55d0a1a01139, 0x1139, nil},
		{"exe", exe, proc.Mapping{Start: 0x400000, End: 0x49e000, Offset: 0}, 0x401234, 0x401234, nil},
		{"odd", odd, proc.Mapping{Start: 0x7f0000000000, End: 0x7f0000003000, Offset: 0}, 0x7f0000001300, 0x2300, nil}, // mapping start is vaddr 0x1000
		{"outside mapping", pie, proc.Mapping{Start: 0x1000, End: 0x2000, Offset: 0x1000}, 0x2000, 0, ErrNoMapping},
		{"in no segment", pie, proc.Mapping{Start: 0x1000, End: 0x2000, Offset: 0x1000}, 0x1f00, 0, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.f.PCToVaddr(tt.pc, tt.m)
			if !errors.Is(err, tt.err) || (tt.err == nil && got != tt.want) {
				t.Errorf("PCToVaddr(%#x) = %#x, %v; want %#x, %v", tt.pc, got, err, tt.want, tt.err)
			}
		})
	}
}

func note(name string, typ uint32, desc []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, []uint32{uint32(len(name)), uint32(len(desc)), typ})
	b.WriteString(name)
	for b.Len()%4 != 0 {
		b.WriteByte(0)
	}
	b.Write(desc)
	for b.Len()%4 != 0 {
		b.WriteByte(0)
	}
	return b.Bytes()
}

func TestParseBuildIDNote(t *testing.T) {
	id := []byte{0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"gnu", note("GNU\x00", 3, id), "deadbeef0102030405"},
		{"after another note", append(note("GNU\x00", 1, []byte{0, 0, 0, 0, 3, 0, 0, 0}), note("GNU\x00", 3, id)...), "deadbeef0102030405"},
		{"other owner", note("Go\x00\x00", 3, id), ""},
		{"truncated", note("GNU\x00", 3, id)[:20], ""},
		{"huge descsz", append([]byte{4, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 3, 0, 0, 0}, "GNU\x00"...), ""},
		{"empty", nil, ""},
	}
	for _, tt := range tests {
		if got := ParseBuildIDNote(tt.data, binary.LittleEndian); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestParseDebuglink(t *testing.T) {
	tests := []struct {
		name    string
		data    []byte
		want    string
		wantCRC uint32
		err     bool
	}{
		{"ok", []byte("compute.debug\x00\x00\x00\x78\x56\x34\x12"), "compute.debug", 0x12345678, false},
		{"aligned name", []byte("abc\x00\x01\x00\x00\x00"), "abc", 1, false},
		{"no crc", []byte("compute.debug\x00"), "", 0, true},
		{"no name", []byte("\x00\x00\x00\x00\x01\x00\x00\x00"), "", 0, true},
		{"path", []byte("../../etc/passwd\x00\x00\x00\x00\x01\x00\x00\x00"), "", 0, true},
	}
	for _, tt := range tests {
		name, crc, err := ParseDebuglink(tt.data, binary.LittleEndian)
		if (err != nil) != tt.err || name != tt.want || crc != tt.wantCRC {
			t.Errorf("%s: got %q %#x %v", tt.name, name, crc, err)
		}
	}
}

func TestCache(t *testing.T) {
	var evicted []int
	c := NewCache[int](2, func(v int) { evicted = append(evicted, v) })
	a, b, d := Key{BuildID: "a"}, Key{Path: "/b", Ino: 1}, Key{Path: "/b", Ino: 2}
	c.Add(a, 1)
	c.Add(b, 2)
	c.Get(a) // b is now the least recently used
	c.Add(d, 3)
	if _, ok := c.Get(b); ok || c.Len() != 2 || len(evicted) != 1 || evicted[0] != 2 {
		t.Errorf("after eviction: has b %v, len %d, evicted %v", ok, c.Len(), evicted)
	}
	if v, ok := c.Get(a); !ok || v != 1 {
		t.Errorf("Get(a) = %d, %v", v, ok)
	}
	c.Clear()
	if _, ok := c.Get(a); ok || c.Len() != 0 || len(evicted) != 3 {
		t.Errorf("after Clear: has a %v, len %d, evicted %v", ok, c.Len(), evicted)
	}
	c.Add(a, 4) // still usable
	if v, ok := c.Get(a); !ok || v != 4 || c.Len() != 1 {
		t.Errorf("after Clear and Add: Get(a) = %d, %v, len %d", v, ok, c.Len())
	}
}

func TestParseSelf(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	o, err := Parse(f, -1)
	if err != nil {
		t.Fatal(err)
	}
	// The go tool gives test binaries a build-id note.
	if o.BuildID == "" {
		t.Error("no build-id in the test binary")
	}
	if _, err := o.Section(".gopclntab"); err != nil {
		t.Error(err)
	}
}

func TestParseGarbage(t *testing.T) {
	for _, data := range [][]byte{nil, []byte("not an ELF"), []byte("\x7fELF\x02\x01\x01")} {
		if _, err := Parse(bytes.NewReader(data), int64(len(data))); !errors.Is(err, ErrMalformed) {
			t.Errorf("Parse(%q) = %v, want ErrMalformed", data, err)
		}
	}
}

// FuzzParse opens arbitrary bytes as an object and reads what Open's
// callers read: build-id, debuglink, sections, segments.
func FuzzParse(f *testing.F) {
	if exe, err := os.Executable(); err == nil {
		if data, err := os.ReadFile(exe); err == nil && len(data) > 4096 {
			f.Add(data[:4096])
		}
	}
	f.Add([]byte("\x7fELF\x02\x01\x01\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := Parse(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		o.Debuglink()
		for _, s := range o.ELF.Sections {
			o.Section(s.Name)
		}
		o.FileOffsetToVaddr(0x1000)
		o.PCToVaddr(0x1000, proc.Mapping{Start: 0x1000, End: 0x2000})
	})
}

// A file without a build-id rewritten in place (same path, device and
// inode) has another key: a cache that outlives a diagnosis must not
// serve its old names.
func TestKeyFollowsRewrite(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "obj")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	key := func() Key {
		t.Helper()
		f, err := openFile(path, "host")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		f.BuildID = "" // as an object built without one
		return f.Key()
	}
	k0 := key()
	if k0 != key() {
		t.Fatal("two opens of one file: two keys")
	}
	// Rewritten in place: same inode, other contents and time.
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(append(data, make([]byte, 4096)...))
	w.Close()
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	if k1 := key(); k1 == k0 || k1.Ino != k0.Ino {
		t.Errorf("rewritten in place: key %+v, before %+v; want the same inode under another key", k1, k0)
	}
}

// A sized cache keeps at most its bytes, the least recently used going
// first, and refuses a value bigger than the bound alone.
func TestSizedCache(t *testing.T) {
	var evicted []int
	c := NewSizedCache[int](10, 100, func(v int) int64 { return int64(v) }, func(v int) { evicted = append(evicted, v) })
	k := func(i uint64) Key { return Key{Path: "/o", Ino: i} }
	steps := []struct {
		name    string
		do      func() bool
		kept    bool
		bytes   int64
		evicted []int
	}{
		{"40", func() bool { return c.Add(k(1), 40) }, true, 40, nil},
		{"50", func() bool { return c.Add(k(2), 50) }, true, 90, nil},
		{"40 used", func() bool { _, ok := c.Get(k(1)); return ok }, true, 90, nil},
		{"30 evicts 50", func() bool { return c.Add(k(3), 30) }, true, 70, []int{50}},
		{"100 evicts both", func() bool { return c.Add(k(4), 100) }, true, 100, []int{50, 40, 30}},
		{"101 refused", func() bool { return c.Add(k(5), 101) }, false, 100, []int{50, 40, 30}},
		{"replaced smaller", func() bool { return c.Add(k(4), 10) }, true, 10, []int{50, 40, 30, 100}},
	}
	for _, st := range steps {
		if kept := st.do(); kept != st.kept || c.Bytes() != st.bytes || !slices.Equal(evicted, st.evicted) {
			t.Errorf("%s: kept %v, %d bytes, evicted %v; want %v, %d, %v", st.name, kept, c.Bytes(), evicted, st.kept, st.bytes, st.evicted)
		}
	}
	if _, ok := c.Get(k(5)); ok {
		t.Error("a value over the bound is held")
	}
	c.Clear()
	if c.Bytes() != 0 || c.Len() != 0 {
		t.Errorf("after Clear: %d bytes, %d values", c.Bytes(), c.Len())
	}
}

// Identify names the file a mapping maps by its stat, through map_files
// or, where those cannot be read, through the process's root: the two
// agree, a file rewritten in place gets another key, and a file at
// another path with the same bytes is another file.
func TestIdentify(t *testing.T) {
	maps, err := proc.FS{}.Maps(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	var m proc.Mapping
	for _, mm := range maps {
		if mm.Exec() && strings.HasPrefix(mm.Path, "/") {
			m = mm
			break
		}
	}
	if m.Path == "" {
		t.Fatal("no executable file mapping in this process")
	}
	viaMapFiles, err := Identify(proc.FS{}, os.Getpid(), m)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(m.Path)
	if err != nil {
		t.Fatal(err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	want := Key{Path: m.Path, Dev: sys.Dev, Ino: sys.Ino, Size: st.Size(), Mtime: st.ModTime().UnixNano()}
	if viaMapFiles != want {
		t.Errorf("Identify = %+v, want %+v", viaMapFiles, want)
	}
	// A /proc tree without map_files: the root's path.
	root := t.TempDir()
	pidDir := filepath.Join(root, strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(pidDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/", filepath.Join(pidDir, "root")); err != nil {
		t.Fatal(err)
	}
	viaRoot, err := Identify(proc.FS{Root: root}, os.Getpid(), m)
	if err != nil || viaRoot != viaMapFiles {
		t.Errorf("through the root: %+v, %v; want %+v", viaRoot, err, viaMapFiles)
	}
	if _, err := Identify(proc.FS{Root: root}, os.Getpid(), proc.Mapping{Start: m.Start, End: m.End, Path: m.Path + " (deleted)"}); err == nil {
		t.Error("a deleted file without map_files: identified")
	}
	if _, err := Identify(proc.FS{}, os.Getpid(), proc.Mapping{Path: "[vdso]"}); !errors.Is(err, ErrNoMapping) {
		t.Errorf("[vdso]: %v, want ErrNoMapping", err)
	}

	// A copy, then the copy rewritten in place.
	data, err := os.ReadFile(m.Path)
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(t.TempDir(), filepath.Base(m.Path))
	if err := os.WriteFile(cp, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cm := proc.Mapping{Path: cp}
	k0, err := Identify(proc.FS{Root: root}, os.Getpid(), cm)
	if err != nil {
		t.Fatal(err)
	}
	if k0.Dev == viaMapFiles.Dev && k0.Ino == viaMapFiles.Ino {
		t.Errorf("a copy has the original's identity: %+v", k0)
	}
	later := time.Now().Add(time.Minute)
	if err := os.WriteFile(cp, append(data, 0), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(cp, later, later); err != nil {
		t.Fatal(err)
	}
	if k1, err := Identify(proc.FS{Root: root}, os.Getpid(), cm); err != nil || k1 == k0 || k1.Ino != k0.Ino {
		t.Errorf("rewritten in place: %+v, %v; before %+v", k1, err, k0)
	}
}
