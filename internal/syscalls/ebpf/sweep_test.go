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
// moved out of the table during the window, so no call is lost, and each
// thread's calls are kept under its own TID and name.
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

	p := trace(t, ebpf.New(), cmd.Process.Pid, syscalls.Options{Duration: 2 * time.Second, MaxKeys: 256})
	getppid := sysno.Number(runtime.GOARCH, "getppid")
	perThread := map[int]uint64{}
	for k, s := range p.Stats {
		if k.Nr == getppid {
			perThread[k.TID] += s.Count
		}
	}
	t.Logf("%d threads called getppid, %d keys, %d threads named, dropped %d", len(perThread), len(p.Stats), len(p.Threads), p.Dropped)
	if p.Dropped != 0 {
		t.Errorf("%d calls dropped: the keys of exited threads stayed in the table; notes %q", p.Dropped, p.Notes)
	}
	// About 150 in 2 s on an idle machine; far fewer than that would
	// mean the target was starved, not that the tracer failed.
	if len(perThread) < 30 {
		t.Errorf("%d threads called getppid in 2 s, want about 150", len(perThread))
	}
	if len(p.Stats) <= 256 {
		t.Errorf("%d keys: no more than the table holds, so nothing was swept", len(p.Stats))
	}
	for tid, n := range perThread {
		if n > 3 {
			t.Errorf("thread %d called getppid %d times, want at most 3: TIDs merged", tid, n)
		}
		if p.Threads[tid] == "" || p.Threads[tid] == "?" {
			t.Errorf("thread %d has no name (%q)", tid, p.Threads[tid])
		}
	}
}
