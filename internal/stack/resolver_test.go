package stack

import (
	"encoding/binary"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/sys"
	"github.com/cpuwhy/cpuwhy/internal/unwind"
)

// namedFunction is an address this test's own binary names.
func namedFunction() {}

func newSelf(t *testing.T) *Resolver {
	t.Helper()
	r, err := New(os.Getpid(), Options{FS: proc.FS{}, Runtimes: []Runtime{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// TestResolverPrograms follows a process through execs it is told of: a
// sample is unwound and named by the program it ran, picked by its time,
// whatever order the samples come in; a program left is named by its own
// mappings; programs older than the last maxImages are not kept, and a
// note counts the samples that fell in them. The process is this test
// itself, which runs the same program all along: after each pretended
// exec, the "new program" has no mappings (as when they could not be
// read), and only the symbolizer, reading the process's own, names it.
func TestResolverPrograms(t *testing.T) {
	r := newSelf(t)
	pc := uint64(reflect.ValueOf(namedFunction).Pointer())
	name := func() string { return r.Native(pc, false).Name() }
	if !strings.HasSuffix(name(), "namedFunction") {
		t.Fatalf("the live program names %#x %q", pc, name())
	}
	base := uint64(sys.Monotonic())
	r.Exec(base+1000, nil)
	for _, tt := range []struct {
		time  uint64
		gen   int
		named bool // by the program before the exec, or not at all
	}{
		{base + 999, 0, true}, {base + 1000, 1, false}, {base + 5, 0, true}, {base + 1<<40, 1, false},
	} {
		gen := r.At(tt.time)
		if gen != tt.gen {
			t.Errorf("At(base+%d) = %d, want %d", tt.time-base, gen, tt.gen)
		}
		if _, _, ok := r.cur.space.Lookup(pc); ok != tt.named {
			t.Errorf("at base+%d, %#x unwinds by a table: %v, want %v", tt.time-base, pc, ok, tt.named)
		}
		if tt.named && !strings.HasSuffix(name(), "namedFunction") {
			t.Errorf("at base+%d, %#x is named %q by the program before the exec", tt.time-base, pc, name())
		}
	}

	// Four more execs: the first two programs are no longer kept, and
	// what ran them is named by nothing.
	for at := base + 2000; at <= base+5000; at += 1000 {
		r.Exec(at, nil)
	}
	if gen := r.At(base + 500); gen != 1 || !strings.HasPrefix(name(), "[unknown]") {
		t.Errorf("At(base+500) = %d, naming %q; want 1, the program before those kept, and nothing named", gen, name())
	}
	if gen := r.At(base + 4500); gen != 4 {
		t.Errorf("At(base+4500) = %d, want 4", gen)
	}
	for gen, want := range []bool{false, false, true, true, true, true} {
		if got := r.Generation(gen); got != want {
			t.Errorf("Generation(%d) = %v, want %v", gen, got, want)
		}
	}
	notes := strings.Join(r.Notes(), "\n")
	if !strings.Contains(notes, "1 samples ran programs the process left") {
		t.Errorf("no note of the sample of a program not kept: %q", notes)
	}
}

// TestResolverReadAfterExec: mappings read again after an exec the
// resolver was not yet told of are the new program's; told of it, the
// resolver names the old program by the reading before.
func TestResolverReadAfterExec(t *testing.T) {
	r := newSelf(t)
	first := r.live().maps
	exec := sys.Monotonic()
	r.build(first[:1]) // read "after the exec"
	r.Exec(uint64(exec), nil)
	if old := r.images[0]; len(old.maps) != len(first) {
		t.Errorf("the program before the exec has %d mappings, want the %d read before it", len(old.maps), len(first))
	}
	r.At(uint64(exec) - 1)
	pc := uint64(reflect.ValueOf(namedFunction).Pointer())
	if got := r.Native(pc, false).Name(); !strings.HasSuffix(got, "namedFunction") {
		t.Errorf("before the exec, %#x is named %q", pc, got)
	}
}

func TestCountsByProgram(t *testing.T) {
	c := NewCounts()
	f := Frame{Kind: Native, Function: "burn"}
	c.Add(7, 0, []Frame{f}, 0x10)
	c.Add(7, 1, []Frame{f}, 0x10)
	c.Add(7, 1, []Frame{f}, 0x10)
	stacks := c.Stacks()
	if len(stacks) != 2 {
		t.Fatalf("%d stacks, want one per program: %+v", len(stacks), stacks)
	}
	for _, s := range stacks {
		if want := int64(s.Gen + 1); s.TID != 7 || s.Count != want {
			t.Errorf("stack %+v, want thread 7 and %d samples", s, want)
		}
	}
	leaves := c.Leaves()
	if len(leaves) != 2 || leaves[0] != (Leaf{TID: 7, Gen: 1, PC: 0x10, Count: 2}) || leaves[1] != (Leaf{TID: 7, Gen: 0, PC: 0x10, Count: 1}) {
		t.Errorf("leaves %+v, want one per program, the most sampled first", leaves)
	}
}

// TestFrameName: a runtime's function prints with its source position,
// which tells a script's anonymous functions apart; a native one by its
// name alone, as before.
func TestFrameName(t *testing.T) {
	for _, tt := range []struct {
		f          Frame
		name, text string
	}{
		{Frame{Kind: "v8", Function: "settleAccounts", File: "/app/ledger.js", Line: 7}, "settleAccounts (ledger.js:7)", "settleAccounts (ledger.js:7)"},
		{Frame{Kind: "v8", Function: "load", File: "node:internal/modules/cjs/loader"}, "load (loader)", "load (loader)"},
		{Frame{Kind: Native, Function: "RecvFrom", File: "/src/Network.c", Line: 2301}, "RecvFrom", "RecvFrom (Network.c:2301)"},
		{Frame{Kind: Native, Module: "/opt/vpnserver", Offset: 0x165a}, "vpnserver+0x165a", "vpnserver+0x165a"},
	} {
		if got := tt.f.Name(); got != tt.name {
			t.Errorf("Name of %+v = %q, want %q", tt.f, got, tt.name)
		}
		if got := tt.f.String(); got != tt.text {
			t.Errorf("String of %+v = %q, want %q", tt.f, got, tt.text)
		}
	}
}

// TestUnwindAgain: a walk taken again from the same registers gives, for
// any stack, what walking it gives: the same when the words it read are
// the same, whatever else differs; another walk when one of them is
// not. The stack is a frame-pointer chain through this test's code,
// changed at random word by word.
func TestUnwindAgain(t *testing.T) {
	r, fresh := newSelf(t), newSelf(t)
	pc := uint64(reflect.ValueOf(namedFunction).Pointer())
	base := uint64(0x7f0000000000)
	data := make([]byte, 256)
	put := func(off int, v uint64) { binary.LittleEndian.PutUint64(data[off:], v) }
	// Frames at base+16, +64 and +128, each [saved FP, return address].
	put(16, base+64)
	put(24, pc+1)
	put(64, base+128)
	put(72, pc+2)
	put(128, 0)
	put(136, 0)
	regs := unwind.Regs{PC: pc, SP: base, FP: base + 16}
	rng := rand.New(rand.NewPCG(3, 4))
	walkedAgain := 0
	for i := range 300 {
		stack := unwind.StackCopy{Base: base, Data: slices.Clone(data)}
		if i%2 == 1 {
			// One word changed: read by the walk or not.
			off := 8 * rng.IntN(len(data)/8)
			choices := []uint64{0, pc + 3, base + 64, base + 128, base + 200, 42}
			binary.LittleEndian.PutUint64(stack.Data[off:], choices[rng.IntN(len(choices))])
		}
		before := r.nextWalk // counts the walks kept
		got, gotStop := r.Unwind(regs, stack)
		got = slices.Clone(got)
		fresh.walks = nil
		want, wantStop := fresh.Unwind(regs, stack)
		if !slices.Equal(got, want) || gotStop != wantStop {
			t.Fatalf("sample %d: walked again %#x (%v), walking gives %#x (%v)", i, got, gotStop, want, wantStop)
		}
		if r.nextWalk == before && gotStop != unwind.StopMemory {
			walkedAgain++
		}
	}
	if walkedAgain == 0 {
		t.Error("no walk was taken again")
	}
	t.Logf("%d of 300 walks taken again", walkedAgain)
}
