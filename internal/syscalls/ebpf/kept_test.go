package ebpf_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/syscalls"
	"github.com/cpuwhy/cpuwhy/internal/syscalls/ebpf"
	"github.com/cpuwhy/cpuwhy/test/scenario"
)

// A kept tracer traces one process, then another, with the programs it
// loaded for the first: the second's profile holds its own threads only
// (no key, name, pending run or stack of the first's is left in the
// tables), its count agrees with the scenario's own as a fresh tracer's
// does, and the set was loaded once; other options load another.
func TestKeptAcrossTargets(t *testing.T) {
	a, b := scenario.StartBusypoll(t), scenario.StartBusypoll(t)
	kt := ebpf.NewKept()
	defer kt.Close()
	opts := syscalls.Options{Duration: time.Second, TimeEvery: 16, Stacks: true, Exact: true}
	for round, bp := range []*scenario.Busypoll{a, b, a} {
		p, lo, hi := countWindow(t, kt, bp, opts)
		other := a
		if bp == a {
			other = b
		}
		otherTIDs := map[int]bool{}
		for _, tid := range tids(t, other.PID()) {
			otherTIDs[tid] = true
		}
		for k := range p.Stats {
			if otherTIDs[k.TID] {
				t.Errorf("round %d: a key of the other process's thread %d: %+v", round, k.TID, k)
			}
		}
		for k := range p.Stacks {
			if otherTIDs[k.TID] {
				t.Errorf("round %d: a stack of the other process's thread %d", round, k.TID)
			}
		}
		nat := tidNamed(t, p, "NatThreadMain")
		st := p.Stats[syscalls.Key{TID: nat, Nr: recvfrom, Errno: eagain, FD: socketFD(t, bp)}]
		if st == nil {
			t.Fatalf("round %d: no recvfrom of NatThreadMain in %v", round, p.Stats)
		}
		checkCount(t, fmt.Sprintf("round %d", round), st.Count, lo, hi)
		if p.Dropped != 0 || len(p.Stacks) == 0 {
			t.Errorf("round %d: dropped %d, %d stacks", round, p.Dropped, len(p.Stacks))
		}
	}
	if n := kt.Loads(); n != 1 {
		t.Errorf("%d program sets loaded for three traces with the same options, want 1", n)
	}
	trace(t, kt, b.PID(), syscalls.Options{Duration: 200 * time.Millisecond})
	if n := kt.Loads(); n != 2 {
		t.Errorf("%d program sets loaded after a trace with other options, want 2", n)
	}
}

// tids lists the threads of pid.
func tids(t *testing.T, pid int) []int {
	t.Helper()
	p, err := procScanner().ReadProcess(pid, true)
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, th := range p.Threads {
		out = append(out, th.PID)
	}
	return out
}

func procScanner() *proc.Scanner { return proc.NewScanner(proc.FS{}) }
