package top_test

import (
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/taskiter"
	"github.com/cpuwhy/cpuwhy/internal/top"
	"github.com/cpuwhy/cpuwhy/test/privtest"
	"github.com/cpuwhy/cpuwhy/test/scenario"
)

// TestThreadViewFromTaskIterator: a thread view built from the BPF task
// iterator shows what one built from /proc shows: the same threads, each
// sleeping in the same system call (pause, for the threads scenario's
// sleepers), found without reading a file per thread.
func TestThreadViewFromTaskIterator(t *testing.T) {
	it, err := taskiter.Open()
	if errors.Is(err, os.ErrPermission) || errors.Is(err, ebpf.ErrNotSupported) {
		privtest.Require(t, err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	cmd := scenario.Build(t, "threads").Start(t, nil, "50")
	// It prints ready, then its main thread pauses too; its threads may
	// not all have reached pause yet on a loaded machine (15 of 51
	// once): wait for every one (a guard against a hang, not a measure).
	pid := cmd.Process.Pid
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		tasks, err := proc.FS{}.Tasks(pid, nil)
		if err != nil {
			t.Fatal(err)
		}
		paused := 0
		for _, tid := range tasks {
			if b, err := os.ReadFile(proc.FS{}.TaskPath(pid, tid, "syscall")); err == nil && top.ParseSyscallFile(b) == "pause" {
				paused++
			}
		}
		if paused == 51 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of the scenario's 51 threads paused", paused)
		}
	}
	spec := top.Spec{Threads: true, PIDs: []int{cmd.Process.Pid}}
	view := func(o top.Options) top.Process {
		s, err := top.NewSampler(o)
		if err != nil {
			t.Fatal(err)
		}
		f, err := s.Next(spec)
		if err != nil {
			t.Fatal(err)
		}
		if len(f.Processes) != 1 {
			t.Fatalf("%d processes in the view of one", len(f.Processes))
		}
		s.ResolveBlocked(f.Processes)
		return f.Processes[0]
	}
	fromProc := view(top.Options{Proc: proc.FS{}})
	fromIter := view(top.Options{Proc: proc.FS{}, Tasks: it})
	// As from the iter/task program (no process records, before Linux
	// 6.7), the threads in any order.
	fromRecords := view(top.Options{Proc: proc.FS{}, Tasks: threadsOnly{it}})
	tids := func(p top.Process) []int {
		var out []int
		for _, th := range p.Threads {
			out = append(out, th.TID)
		}
		slices.Sort(out)
		return out
	}
	if a, b := tids(fromProc), tids(fromIter); !slices.Equal(a, b) || len(a) != 51 {
		t.Fatalf("threads from /proc %v, from the iterator %v; want the 51 of the scenario", a, b)
	}
	if a, b := tids(fromProc), tids(fromRecords); !slices.Equal(a, b) {
		t.Fatalf("threads from /proc %v, from thread records alone %v", a, b)
	}
	// The process's own line, which the walker (Linux 6.7) adds up in the
	// kernel, as /proc/PID/stat gives it: the scenario has paused, so
	// nothing changes between the two views.
	if a, b := fromProc, fromIter; a.Name != b.Name || a.PPID != b.PPID || a.State != b.State || a.NumThreads != b.NumThreads || a.RSSBytes != b.RSSBytes {
		t.Errorf("the process from /proc: %s ppid %d state %s, %d threads, RSS %d; from the iterator: %s ppid %d state %s, %d threads, RSS %d",
			a.Name, a.PPID, a.State, a.NumThreads, a.RSSBytes, b.Name, b.PPID, b.State, b.NumThreads, b.RSSBytes)
	}
	// The main thread pauses too, once its threads are started.
	pauses := func(p top.Process) int {
		n := 0
		for _, th := range p.Threads {
			if th.Syscall == "pause" {
				n++
			}
		}
		return n
	}
	if n := pauses(fromRecords); n != 51 {
		t.Errorf("threads shown in pause from thread records alone: %d, want all 51", n)
	}
	if a, b := pauses(fromProc), pauses(fromIter); a != 51 || b != 51 {
		t.Errorf("threads shown in pause: %d from /proc, %d from the iterator, want all 51: %+v", a, b, fromIter.Threads)
	}
}

// TestWholeHostThreadView: a thread view of the whole host built from
// the BPF task iterator holds every user process /proc lists before and
// after it, a protected PID 1 the kernel's task lists leave out on some
// VMs included (read from /proc, with or without a listing of /proc: the
// walker's count of tasks says whether one is needed), and each with
// its threads.
func TestWholeHostThreadView(t *testing.T) {
	it, err := taskiter.Open()
	if errors.Is(err, os.ErrPermission) || errors.Is(err, ebpf.ErrNotSupported) {
		privtest.Require(t, err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	s, err := top.NewSampler(top.Options{Proc: proc.FS{}, Tasks: it})
	if err != nil {
		t.Fatal(err)
	}
	scan := func() *proc.Snapshot {
		snap, err := proc.NewScanner(proc.FS{}).Scan(proc.ScanOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return snap
	}
	before := scan()
	f, err := s.Next(top.Spec{Threads: true})
	if err != nil {
		t.Fatal(err)
	}
	after := scan()
	shown := map[int]top.Process{}
	for _, p := range f.Processes {
		shown[p.PID] = p
	}
	for _, b := range before.Processes {
		a := after.Find(b.PID)
		if a == nil || a.StartTime != b.StartTime {
			continue // exited or replaced meanwhile
		}
		p, ok := shown[b.PID]
		if !ok {
			t.Errorf("process %d (%s) not in the view", b.PID, b.Comm)
			continue
		}
		if len(p.Threads) == 0 {
			t.Errorf("process %d (%s) shown without its threads", b.PID, b.Comm)
		}
	}
	if _, ok := shown[1]; !ok {
		t.Error("PID 1 not in the view")
	}
}

// threadsOnly lists as the iter/task program does, before Linux 6.7:
// threads and no process records; here every other one moved to the
// end, so that each process's threads come in two runs, which the view
// must not depend on.
type threadsOnly struct{ it *taskiter.Iter }

func (o threadsOnly) Read(l *taskiter.Listing) error {
	if err := o.it.Read(l); err != nil {
		return err
	}
	l.Groups, l.Walked = nil, 0
	var odd []taskiter.Task
	even := l.Tasks[:0]
	for i, task := range l.Tasks {
		if i%2 == 1 {
			odd = append(odd, task)
		} else {
			even = append(even, task)
		}
	}
	l.Tasks = append(even, odd...)
	return nil
}
