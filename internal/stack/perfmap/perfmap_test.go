package perfmap

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/stack"
)

// fakeProcess is a process 42 whose own PID namespace calls it 7, under a
// fake /proc: its root is dir/42/root, its map dir/42/root/tmp/perf-7.map.
type fakeProcess struct {
	t     *testing.T
	proc  string // the fake /proc
	map_  string // the map's host path
	clock time.Time
}

func newFakeProcess(t *testing.T) *fakeProcess {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "42", "root", "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	return &fakeProcess{t: t, proc: dir, map_: filepath.Join(dir, "42", "root", "tmp", "perf-7.map"), clock: time.Unix(1000, 0)}
}

// write replaces the map.
func (p *fakeProcess) write(s string) {
	p.t.Helper()
	tmp := p.map_ + ".tmp"
	if err := os.WriteFile(tmp, []byte(s), 0o644); err != nil {
		p.t.Fatal(err)
	}
	if err := os.Rename(tmp, p.map_); err != nil {
		p.t.Fatal(err)
	}
}

// append adds to the map, as a JIT does.
func (p *fakeProcess) append(s string) {
	p.t.Helper()
	f, err := os.OpenFile(p.map_, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		p.t.Fatal(err)
	}
}

func (p *fakeProcess) attach(lim Limits) *Map {
	p.t.Helper()
	in, err := Runtime{Limits: lim}.Attach(stack.Process{PID: 42, NsPID: 7, FS: proc.FS{Root: p.proc}})
	if err != nil {
		p.t.Fatal(err)
	}
	i := in.(*Map)
	i.now = func() time.Time { return p.clock }
	i.lastRead = p.clock // Attach read the map just now
	return i
}

func anon(addr uint64) stack.Frame {
	return stack.Frame{Kind: stack.Native, Module: "[anon]", Offset: addr}
}

// names expands one sample whose frames are all in anonymous code, the
// first at pcs[0], the others called from pcs[i]-1, as the resolver
// gives them.
func names(in *Map, pcs ...uint64) []string {
	frames := make([]stack.Frame, len(pcs))
	for i, pc := range pcs {
		if i > 0 {
			pc--
		}
		frames[i] = anon(pc)
	}
	var out []string
	for _, f := range in.Expand(1, pcs, frames) {
		if f.Kind == Kind {
			out = append(out, f.Function)
		} else {
			out = append(out, f.Name())
		}
	}
	return out
}

func TestExpand(t *testing.T) {
	p := newFakeProcess(t)
	p.write("1000 100 JS:*hot a.js:1:1\n2000 10 py::caller:/app/x.py\n4000 10 Lstripped;::code\n")
	in := p.attach(Limits{})
	pcs := []uint64{0x1010, 0x2010, 0x3000, 0x4005, 0x5000, 0x6000}
	frames := []stack.Frame{
		anon(0x1010),
		// A return address one past the end of the symbol: the call is
		// in it.
		{Kind: stack.Native, Module: "[anon]", Offset: 0x200f},
		// Named by the symbolizer: left alone, even where the map says
		// otherwise.
		{Kind: stack.Native, Module: "/usr/bin/node", Function: "Builtins_JSEntry", Offset: 0x3000},
		// In an object without symbols: named by address.
		{Kind: stack.Native, Module: "/opt/app/stripped", Offset: 0x5},
		// Outside every mapping read so far.
		{Kind: stack.Native, Module: "[unknown]", Offset: 0x4fff},
		{Kind: stack.Kernel, Module: "[kernel]", Function: "[kernel]", Offset: 0x1010},
	}
	got := in.Expand(1, pcs, frames)
	want := []stack.Frame{
		{Kind: Kind, Module: "[anon]", Offset: 0x1010, Function: "JS:*hot a.js:1:1"},
		{Kind: Kind, Module: "[anon]", Offset: 0x200f, Function: "py::caller:/app/x.py"},
		frames[2],
		{Kind: Kind, Module: "/opt/app/stripped", Offset: 0x5, Function: "Lstripped;::code"},
		{Kind: stack.Native, Module: "[unknown]", Offset: 0x4fff},
		frames[5],
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("frame %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if n := in.Notes(); len(n) != 0 {
		t.Errorf("notes %q for a map that named what it could", n)
	}
}

// TestGrowth follows a map as a JIT writes it: appended lines are read
// on Sync and when an address in anonymous code is missing, at most
// every rereadInterval; a line being written is read once it ends; a map
// written anew is read from its start.
func TestGrowth(t *testing.T) {
	p := newFakeProcess(t)
	in := p.attach(Limits{})
	if got := names(in, 0x1000); got[0] != "[anon]+0x1000" {
		t.Fatalf("no map yet: %q", got)
	}

	p.write("1000 10 first\n")
	if got := names(in, 0x1000); got[0] != "[anon]+0x1000" {
		t.Errorf("read again %v after the last look: %q", time.Duration(0), got)
	}
	p.clock = p.clock.Add(rereadInterval)
	if got := names(in, 0x1000); got[0] != "first" {
		t.Errorf("a missing address %v after the last look: %q, want first", rereadInterval, got)
	}

	// A line halfway written: not read until its newline.
	p.append("2000 10 sec")
	p.clock = p.clock.Add(rereadInterval)
	if got := names(in, 0x2000); got[0] != "[anon]+0x2000" {
		t.Errorf("half a line named %q", got)
	}
	p.append("ond\n3000 10 third\n")
	in.Sync(nil)
	if got := names(in, 0x2000, 0x3001, 0x1001); strings.Join(got, " ") != "second third first" {
		t.Errorf("after Sync: %q", got)
	}
	before := in.table

	// Code moved: a later line at the same address wins.
	p.append("1000 10 moved\n")
	p.clock = p.clock.Add(rereadInterval)
	in.Sync(nil)
	if got := names(in, 0x1000); got[0] != "moved" {
		t.Errorf("a later symbol at the same address: %q, want moved", got)
	}
	if in.table != before {
		t.Error("a grown map was read from its start")
	}

	// A new map (another inode): read from its start; the old names go.
	p.write("5000 10 fresh\n")
	in.Sync(nil)
	if got := names(in, 0x5000, 0x1001); strings.Join(got, " ") != "fresh [anon]+0x1000" {
		t.Errorf("after the map was replaced: %q", got)
	}
	// Truncated in place, then written again, shorter.
	f, err := os.OpenFile(p.map_, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("6000 1 x\n")
	f.Close()
	in.Sync(nil)
	if got := names(in, 0x6000, 0x5001); strings.Join(got, " ") != "x [anon]+0x5000" {
		t.Errorf("after the map was truncated: %q", got)
	}
}

func TestNotes(t *testing.T) {
	t.Run("no map", func(t *testing.T) {
		p := newFakeProcess(t)
		in := p.attach(Limits{})
		if n := in.Notes(); len(n) != 0 {
			t.Errorf("notes %q before any sample in anonymous code", n)
		}
		names(in, 0x1000)
		names(in, 0x1000)
		n := in.Notes()
		if len(n) != 1 || !strings.Contains(n[0], "2 samples") || !strings.Contains(n[0], "/tmp/perf-7.map") || !strings.Contains(n[0], "--perf-basic-prof") {
			t.Errorf("notes %q, want one naming the 2 samples, the map the process would write and how", n)
		}
	})
	t.Run("damaged", func(t *testing.T) {
		p := newFakeProcess(t)
		p.write("1000 10 ok\nnot a line\n2000 10 " + strings.Repeat("x", 100) + "\n3000 10 over\n")
		in := p.attach(Limits{MaxEntries: 2, MaxName: 16})
		if got := names(in, 0x2000); got[0] != strings.Repeat("x", 16) {
			t.Errorf("long name kept as %q", got)
		}
		n := in.Notes()
		if len(n) != 1 {
			t.Fatalf("notes %q, want one", n)
		}
		for _, want := range []string{"/tmp/perf-7.map of process 42", "1 malformed lines of 4", "1 names cut to 16 bytes", "no further than 2 symbols"} {
			if !strings.Contains(n[0], want) {
				t.Errorf("note %q lacks %q", n[0], want)
			}
		}
	})
	t.Run("not a file", func(t *testing.T) {
		p := newFakeProcess(t)
		if err := syscall.Mkfifo(p.map_, 0o644); err != nil {
			t.Fatal(err)
		}
		in := p.attach(Limits{}) // must not block on the FIFO
		names(in, 0x1000)
		if n := in.Notes(); len(n) != 1 || !strings.Contains(n[0], "could not be read") || !strings.Contains(n[0], "not a regular file") {
			t.Errorf("notes %q", n)
		}
	})
}

// TestConfined: the map is the process's, read inside its root. A
// symbolic link to an absolute path, which the process could plant, is
// followed inside the root, never to the host's file of that path.
func TestConfined(t *testing.T) {
	p := newFakeProcess(t)
	host := filepath.Join(t.TempDir(), "host.map")
	if err := os.WriteFile(host, []byte("1000 10 host secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(host, p.map_); err != nil {
		t.Fatal(err)
	}
	in := p.attach(Limits{})
	if got := names(in, 0x1000); got[0] != "[anon]+0x1000" {
		t.Errorf("a link out of the root was followed: %q", got)
	}
	// The same path inside the root is followed.
	inside := filepath.Join(p.proc, "42", "root", host)
	if err := os.MkdirAll(filepath.Dir(inside), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(inside, []byte("1000 10 inside\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	in.Sync(nil)
	if got := names(in, 0x1000); got[0] != "inside" {
		t.Errorf("the link inside the root: %q, want inside", got)
	}
}
