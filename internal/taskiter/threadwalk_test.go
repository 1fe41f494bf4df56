package taskiter

import (
	"errors"
	"os"
	"testing"
	"time"
	"unsafe"

	"github.com/cpuwhy/cpuwhy/internal/proc"
)

// TestGroupRecordSize: the process records threadwalk.go reads are the C
// struct's size.
func TestGroupRecordSize(t *testing.T) {
	type groupRec struct {
		tgid, nrThreads                          uint32
		utime, stime, rtime, prevUtime, prevStme uint64
		rssPages                                 int64
	}
	if n := unsafe.Sizeof(groupRec{}); n != groupRecordSize {
		t.Errorf("struct group_rec is %d bytes, groupRecordSize %d", n, groupRecordSize)
	}
}

// TestWalkedProcessesAgreeWithProc: the walker's process records say
// what /proc/PID/stat says of each user process /proc lists before and
// after the walk: user plus system time between /proc's before and after
// (a tick of slack for each, as /proc truncates both), the time of this
// process's exited threads included; a thread count between; the RSS
// /proc gives when it was the same before and after. Each process's
// records hold its threads, its leader first, and only its.
func TestWalkedProcessesAgreeWithProc(t *testing.T) {
	it := open(t)
	if !it.Walking() {
		if newerThan(t, 6, 7) {
			t.Fatal("the thread walker did not load on a kernel that has open-coded task iterators")
		}
		t.Skip("the thread walker needs Linux 6.7")
	}
	burnAndExit(30 * time.Millisecond)
	before, err := proc.NewScanner(proc.FS{}).Scan(proc.ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var l Listing
	if err := it.Read(&l); err != nil {
		t.Fatal(err)
	}
	after, err := proc.NewScanner(proc.FS{}).Scan(proc.ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	byTGID := map[int]Group{}
	listed := 0
	for i, g := range l.Groups {
		if i > 0 && l.Groups[i-1].TGID >= g.TGID {
			t.Errorf("not sorted: %d after %d", g.TGID, l.Groups[i-1].TGID)
		}
		byTGID[g.TGID] = g
		if g.Count < 1 || g.First < 0 || g.First+g.Count > len(l.Tasks) {
			t.Fatalf("process %d: threads %d to %d of %d", g.TGID, g.First, g.First+g.Count, len(l.Tasks))
		}
		for j, task := range l.Tasks[g.First : g.First+g.Count] {
			if task.TGID != g.TGID || (j == 0) != (task.TID == g.TGID) {
				t.Errorf("process %d: thread %d of process %d at %d of its records", g.TGID, task.TID, task.TGID, j)
			}
		}
		listed += g.Count
	}
	if listed != len(l.Tasks) {
		t.Errorf("%d threads in the processes' records, %d listed", listed, len(l.Tasks))
	}
	checked := 0
	for _, b := range before.Processes {
		a := after.Find(b.PID)
		if a == nil || a.StartTime != b.StartTime {
			continue // exited or replaced meanwhile
		}
		g, ok := byTGID[b.PID]
		if !ok {
			// As for the iterator: a protected PID 1, whose namespaces
			// even root may not read, is not in the kernel's lists here.
			if _, err := os.Readlink(proc.FS{}.TaskPath(b.PID, b.PID, "ns/pid")); !errors.Is(err, os.ErrPermission) {
				t.Errorf("process %d (%s) left out, and not a protected one (reading its ns/pid: %v)", b.PID, b.Comm, err)
			}
			continue
		}
		checked++
		if sum := g.UTime + g.STime; sum+2 < b.UTime+b.STime || sum > a.UTime+a.STime+2 {
			t.Errorf("process %d (%s): walked %d+%d ticks, /proc %d+%d before and %d+%d after", b.PID, b.Comm, g.UTime, g.STime, b.UTime, b.STime, a.UTime, a.STime)
		}
		if g.Threads < min(a.NumThreads, b.NumThreads) || g.Threads > max(a.NumThreads, b.NumThreads) {
			t.Errorf("process %d (%s): %d threads walked, /proc %d before and %d after", b.PID, b.Comm, g.Threads, b.NumThreads, a.NumThreads)
		}
		if a.RSSPages == b.RSSPages && g.RSSPages != a.RSSPages {
			t.Errorf("process %d (%s): RSS %d pages walked, /proc %d", b.PID, b.Comm, g.RSSPages, a.RSSPages)
		}
	}
	self, ok := byTGID[os.Getpid()]
	if !ok {
		t.Fatal("this process is not listed")
	}
	if self.UTime+self.STime < 3 {
		t.Errorf("this process: %d+%d ticks walked, after a thread of it burned 30 ms and exited", self.UTime, self.STime)
	}
	if checked < len(before.Processes)/2 {
		t.Errorf("only %d of %d processes checked", checked, len(before.Processes))
	}
	t.Logf("%d processes, %d threads walked, %d processes checked against /proc", len(l.Groups), len(l.Tasks), checked)
}

// TestWalkCountsEveryTask: the walk's count of tasks is the kernel's
// (nr_threads, /proc/loadavg), less the threads of a protected PID 1
// when the walk leaves it out, as on this VM. Tasks start and end on a
// shared machine: the count is compared only when the kernel's was the
// same before and after the walk, and one such walk in fifty tries is
// enough.
func TestWalkCountsEveryTask(t *testing.T) {
	it := open(t)
	if !it.Walking() {
		t.Skip("the thread walker needs Linux 6.7")
	}
	var l Listing
	for try := 0; try < 50; try++ {
		before, err := proc.FS{}.Loadavg()
		if err != nil {
			t.Fatal(err)
		}
		if err := it.Read(&l); err != nil {
			t.Fatal(err)
		}
		after, err := proc.FS{}.Loadavg()
		if err != nil {
			t.Fatal(err)
		}
		if before.Tasks != after.Tasks {
			continue
		}
		hidden := 0
		if len(l.Groups) > 0 && l.Groups[0].TGID != 1 {
			init, err := proc.NewScanner(proc.FS{}).ReadProcess(1, false)
			if err != nil {
				t.Fatal(err)
			}
			hidden = init.NumThreads
		}
		if l.Walked+hidden != after.Tasks {
			t.Errorf("%d tasks walked and %d of PID 1 left out, the kernel counts %d", l.Walked, hidden, after.Tasks)
		}
		return
	}
	t.Fatal("the host's tasks changed during each of fifty walks")
}
