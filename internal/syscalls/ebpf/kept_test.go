package ebpf_test

import (
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"testing"
	"time"

	cebpf "github.com/cilium/ebpf"

	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/syscalls"
	"github.com/cpuwhy/cpuwhy/internal/syscalls/ebpf"
	"github.com/cpuwhy/cpuwhy/internal/sysno"
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

var readNr = sysno.Number(runtime.GOARCH, "read")

// A call that entered in one trace of a kept tracer and returns in the
// next is counted there, never timed: its slot of the in-flight table,
// written by the first trace, is emptied before the second. A shell
// blocks in read(0) through both: the first trace lets it read a line
// and enter the next read, which returns only when the second trace
// writes its line; the time between the traces would be that call's
// duration if its slot were left.
func TestKeptForgetsInflight(t *testing.T) {
	sh := exec.Command("sh", "-c", "read a; read b; read c")
	in, err := sh.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.Process.Kill(); sh.Wait() })
	pid := sh.Process.Pid
	kt := ebpf.NewKept()
	defer kt.Close()
	// Every call timed, the entry probe attached all through the window.
	opts := syscalls.Options{Duration: 500 * time.Millisecond, TimeEvery: 1}
	write := func(line string) func([]cebpf.ProgramID) {
		return func([]cebpf.ProgramID) {
			if _, err := io.WriteString(in, line); err != nil {
				t.Error(err)
			}
		}
	}
	reads := func(p *syscalls.Profile) *syscalls.Stat {
		t.Helper()
		st := p.Stats[syscalls.Key{TID: pid, Nr: readNr, FD: 0}]
		if st == nil {
			t.Fatalf("no read of fd 0 by the shell in %v", p.Stats)
		}
		return st
	}
	first := trace(t, ebpf.WithHooks(kt, write("a\n"), nil), pid, opts)
	ended := time.Now()
	t.Logf("first trace: %+v", *reads(first))
	time.Sleep(time.Second)
	var began time.Time
	second := trace(t, ebpf.WithHooks(kt, func(ids []cebpf.ProgramID) { began = time.Now(); write("b\n")(ids) }, nil), pid, opts)
	if kt.Loads() != 1 {
		t.Fatalf("%d program sets loaded for two traces with the same options, want 1", kt.Loads())
	}
	st := reads(second)
	gap := began.Sub(ended)
	t.Logf("second trace: %+v; %v between the traces", *st, gap)
	// The reads of "b\n": the one blocked since the first trace, and
	// one per byte after it, each made and timed in this trace.
	if st.Count < 2 || st.Timed != st.Count-1 {
		t.Errorf("%d reads, %d timed: want the one entered in the first trace counted and not timed, the others timed", st.Count, st.Timed)
	}
	// A stale slot would add the whole gap; the reads of two bytes from
	// a pipe already written take a small part of it on any machine.
	if time.Duration(st.TotalNs) > gap/2 {
		t.Errorf("the timed reads took %v in all, against %v between the traces: a duration from the first trace's slot", time.Duration(st.TotalNs), gap)
	}
	io.WriteString(in, "c\n")
}
