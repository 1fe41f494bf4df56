package ebpf_test

import (
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/syscalls"
	"github.com/cpuwhy/cpuwhy/internal/syscalls/ebpf"
	"github.com/cpuwhy/cpuwhy/internal/sysno"
	"github.com/cpuwhy/cpuwhy/test/privtest"
)

// churner is a Python program that starts a thread, which calls getppid
// three times and ends, every 10 ms: far more keys over a window than the
// table of TestExitedThreadsSwept holds, and few at any one time.
const churner = `
import os, threading, time
def work():
    for _ in range(3):
        os.getppid()
while True:
    t = threading.Thread(target=work)
    t.start()
    t.join()
    time.sleep(0.01)
`

// TestExitedThreadsSwept traces a process that starts and ends a thread
// every 10 ms with a table of 256 keys: the keys of exited threads are
// moved out of the table during the window, so no call is lost. The
// first threads' calls are kept under their own TIDs and names; once as
// many keys as the table holds are kept apart, the next threads' calls
// are counted together under ExitedTID, so that what is kept stays
// bounded however long the window.
func TestExitedThreadsSwept(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		privtest.Require(t, "python3 is not installed")
	}
	cmd := exec.Command(python, "-c", churner)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	time.Sleep(300 * time.Millisecond) // past the interpreter's start-up

	const limit = 256
	// Exact: the threads and their calls are counted one by one.
	p := trace(t, ebpf.New(), cmd.Process.Pid, syscalls.Options{Duration: 2 * time.Second, MaxKeys: limit, Exact: true})
	getppid := sysno.Number(runtime.GOARCH, "getppid")
	perThread := map[int]uint64{}
	apart := 0
	for k, s := range p.Stats {
		if k.Nr == getppid {
			perThread[k.TID] += s.Count
		}
		if k.TID != syscalls.ExitedTID {
			apart++
		}
	}
	folded := perThread[syscalls.ExitedTID]
	delete(perThread, syscalls.ExitedTID)
	t.Logf("%d threads apart called getppid, %d folded threads called it %d times; %d keys (%d apart), %d threads named, dropped %d; notes %q",
		len(perThread), p.Folded, folded, len(p.Stats), apart, len(p.Threads), p.Dropped, p.Notes)
	if p.Dropped != 0 {
		t.Errorf("%d calls dropped: the keys of exited threads stayed in the table; notes %q", p.Dropped, p.Notes)
	}
	// About 150 threads in 2 s on an idle machine, each with more than
	// two keys: far fewer than that would mean the target was starved,
	// not that the tracer failed.
	if n := len(perThread) + p.Folded; n < 30 {
		t.Errorf("%d threads called getppid in 2 s, want about 150", n)
	}
	if len(p.Stats) <= limit {
		t.Errorf("%d keys: no more than the table holds, so nothing was swept", len(p.Stats))
	}
	// The swept keys kept apart are at most limit, the live table's at
	// most limit more.
	if apart > 2*limit {
		t.Errorf("%d keys kept under their threads, want at most %d: the sweeper's own keys are not bounded", apart, 2*limit)
	}
	for tid, n := range perThread {
		if n > 3 {
			t.Errorf("thread %d called getppid %d times, want at most 3: TIDs merged", tid, n)
		}
		if p.Threads[tid] == "" || p.Threads[tid] == "?" {
			t.Errorf("thread %d has no name (%q)", tid, p.Threads[tid])
		}
	}
	switch {
	case p.Folded == 0:
		t.Errorf("no thread folded under ExitedTID, with %d keys in a table of %d", len(p.Stats), limit)
	case folded < uint64(p.Folded) || folded > 3*uint64(p.Folded):
		// Each folded thread called getppid 3 times, but one whose
		// calls began before the window, or ended after it, fewer.
		t.Errorf("%d folded threads called getppid %d times, want 1-3 each", p.Folded, folded)
	case p.Threads[syscalls.ExitedTID] != syscalls.ExitedName:
		t.Errorf("folded threads named %q, want %q", p.Threads[syscalls.ExitedTID], syscalls.ExitedName)
	}
}
