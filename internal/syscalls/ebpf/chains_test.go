package ebpf_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	pyebpf "github.com/cpuwhy/cpuwhy/internal/stack/python/ebpf"
	"github.com/cpuwhy/cpuwhy/internal/syscalls"
	"github.com/cpuwhy/cpuwhy/internal/syscalls/ebpf"
	"github.com/cpuwhy/cpuwhy/test/scenario"
)

// chainSource is a syscalls.ChainSource of a made-up interpreter.
type chainSource struct {
	layout  pyebpf.Layout
	err     error
	threads map[int]pyebpf.Thread
	asked   int
}

func (c *chainSource) WalkLayout() (pyebpf.Layout, error) { return c.layout, c.err }
func (c *chainSource) WalkThreads() map[int]pyebpf.Thread {
	c.asked++
	return c.threads
}

// layout312 is a walk layout as CPython 3.12's (package python's table).
var layout312 = pyebpf.Layout{ThreadFrame: 56, CFrameCurrent: 0, ThreadNativeID: 144, FrameBack: 8, FrameCode: 0, FrameInstr: 56,
	FrameOwner: 70, FrameIsEntry: -1, OwnedByCStack: 3, FrameRead: 78}

// TestChainsOfGarbage: the walk linked into sys_enter, told that a
// native thread (busypoll's) has a thread state where no memory is
// mapped, reads nothing there: its stacks carry no chain, the failed
// walks are said in a note, and the threads were asked for at the start
// and at the polls.
func TestChainsOfGarbage(t *testing.T) {
	b := scenario.StartBusypoll(t)
	p0 := trace(t, ebpf.New(), b.PID(), syscalls.Options{Duration: 100 * time.Millisecond})
	nat := tidNamed(t, p0, "NatThreadMain")
	src := &chainSource{layout: layout312, threads: map[int]pyebpf.Thread{nat: {TState: 0x1000}}}
	p := trace(t, ebpf.New(), b.PID(), syscalls.Options{Duration: time.Second, TimeEvery: 16, Stacks: true, Chains: src})
	var stacks int
	for k, ss := range p.Stacks {
		for _, s := range ss {
			stacks++
			if s.Chain != nil {
				t.Errorf("thread %d: a chain read from no memory: %x", k.TID, s.Chain[:32])
			}
		}
	}
	t.Logf("%d stacks; threads asked for %d times; notes %q", stacks, src.asked, p.Notes)
	if stacks == 0 || src.asked < 2 {
		t.Errorf("%d stacks, threads asked for %d times (want at the start and at the polls)", stacks, src.asked)
	}
	if !slices.ContainsFunc(p.Notes, func(n string) bool { return strings.Contains(n, "frame chain could not be read in the kernel") }) ||
		!slices.Contains(p.Notes, ebpf.NotePythonChains) {
		t.Errorf("notes %q: want the failed walks and where the Python frames come from", p.Notes)
	}
}

// TestChainsLost: a walk the programs cannot be loaded with (a layout
// out of its bounds, or an interpreter that says no) costs the trace its
// chains, with a note, not its mechanism.
func TestChainsLost(t *testing.T) {
	b := scenario.StartBusypoll(t)
	for _, src := range []*chainSource{
		{layout: pyebpf.Layout{FrameRead: 500}},
		{err: errors.New("turned off")},
	} {
		p := trace(t, ebpf.New(), b.PID(), syscalls.Options{Duration: 300 * time.Millisecond, TimeEvery: 16, Stacks: true, Chains: src})
		if p.Mechanism != syscalls.EBPF || len(p.Stacks) == 0 || slices.Contains(p.Notes, ebpf.NotePythonChains) ||
			!slices.ContainsFunc(p.Notes, func(n string) bool { return strings.Contains(n, "Python frame chains of the stacks were not read") }) {
			t.Errorf("%+v: mechanism %s, %d stacks, notes %q", src, p.Mechanism, len(p.Stacks), p.Notes)
		}
	}
}
