package taskiter

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"

	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/sys"
	"github.com/cpuwhy/cpuwhy/test/privtest"
)

func openProcs(t *testing.T) *Procs {
	t.Helper()
	p, err := OpenProcs()
	if errors.Is(err, os.ErrPermission) || errors.Is(err, ebpf.ErrNotSupported) {
		privtest.Require(t, err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// TestProcRecordSize: the records procs.go reads are the C structs' size.
func TestProcRecordSize(t *testing.T) {
	type procRec struct {
		tgid, pid            uint32
		rtime, gone, startNs uint64
		comm                 [16]byte
	}
	if n := unsafe.Sizeof(procRec{}); n != procRecordSize {
		t.Errorf("struct proc_rec is %d bytes, procRecordSize %d", n, procRecordSize)
	}
}

// TestProcsAgreesWithProc: every user process /proc lists before and
// after a listing is in it, with the same start time and name, and a run
// time between /proc's utime+stime before and after (a tick of slack for
// rounding: /proc truncates user and system time each); so is this
// test's own process after one of its threads burned CPU and exited,
// whose time only the process's signal_struct holds. Both programs: the
// walker (Linux 6.7 and later), and the iter/task records.
func TestProcsAgreesWithProc(t *testing.T) {
	it := openProcs(t)
	t.Run("walker", func(t *testing.T) {
		if !it.Walking() {
			if newerThan(t, 6, 7) {
				t.Fatal("the process walker did not load on a kernel that has open-coded task iterators")
			}
			t.Skip("the process walker needs Linux 6.7")
		}
		agree(t, it)
	})
	t.Run("records", func(t *testing.T) {
		recs, err := openRecords()
		if err != nil {
			t.Fatal(err)
		}
		p := &Procs{recs: recs, index: map[int]int{}, comms: map[int]string{}, next: map[int]string{}}
		t.Cleanup(func() { p.Close() })
		agree(t, p)
	})
}

func agree(t *testing.T, it *Procs) {
	burnAndExit(50 * time.Millisecond)
	before, err := proc.NewScanner(proc.FS{}).Scan(proc.ScanOptions{Threads: true})
	if err != nil {
		t.Fatal(err)
	}
	procs, err := it.List(nil)
	if err != nil {
		t.Fatal(err)
	}
	self := os.Getpid()
	after, err := proc.NewScanner(proc.FS{}).Scan(proc.ScanOptions{Threads: true})
	if err != nil {
		t.Fatal(err)
	}
	byTGID := map[int]ProcTime{}
	for i, p := range procs {
		if i > 0 && procs[i-1].TGID >= p.TGID {
			t.Errorf("not sorted: %d after %d", p.TGID, procs[i-1].TGID)
		}
		byTGID[p.TGID] = p
	}
	checked := 0
	for _, b := range before.Processes {
		a := after.Find(b.PID)
		if a == nil || a.StartTime != b.StartTime {
			continue // exited or replaced meanwhile
		}
		p, ok := byTGID[b.PID]
		if !ok {
			// As for Iter: this kernel's iter/task leaves out a
			// protected PID 1, whose namespaces even root may not read.
			if _, err := os.Readlink(proc.FS{}.TaskPath(b.PID, b.PID, "ns/pid")); !errors.Is(err, os.ErrPermission) {
				t.Errorf("process %d (%s) left out, and not a protected one (reading its ns/pid: %v)", b.PID, b.Comm, err)
			}
			continue
		}
		checked++
		if p.StartTime != b.StartTime || (p.Comm != b.Comm && p.Comm != a.Comm) {
			t.Errorf("process %d: listed %+v, /proc %+v", b.PID, p, b.Stat)
		}
		ticks := toTicks(p.RunTime)
		if ticks+1 < b.UTime+b.STime || ticks > a.UTime+a.STime+1 {
			t.Errorf("process %d (%s): listed %d ticks (%d threads), /proc %d before and %d after", b.PID, b.Comm, ticks, p.Threads, b.UTime+b.STime, a.UTime+a.STime)
		}
		if p.Threads < 1 || p.Threads > max(len(a.Threads), len(b.Threads)) {
			t.Errorf("process %d (%s): %d threads listed, /proc %d before and %d after", b.PID, b.Comm, p.Threads, len(b.Threads), len(a.Threads))
		}
	}
	if _, ok := byTGID[self]; !ok {
		t.Error("this process is not listed")
	}
	if checked < len(before.Processes)/2 {
		t.Errorf("only %d of %d processes checked", checked, len(before.Processes))
	}
	t.Logf("%d processes listed, %d checked against /proc", len(procs), checked)
}

// newerThan reports whether the running kernel is major.minor or later.
func newerThan(t *testing.T, major, minor int) bool {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		t.Fatal(err)
	}
	var ma, mi int
	if _, err := fmt.Sscanf(string(b), "%d.%d", &ma, &mi); err != nil {
		t.Fatalf("kernel release %q: %v", b, err)
	}
	return ma > major || (ma == major && mi >= minor)
}

// burnAndExit runs an OS thread of this process for d of CPU and lets it
// exit: its time is then in the process's signal_struct, not in a live
// thread.
func burnAndExit(d time.Duration) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		t0 := sys.ThreadCPU().Total()
		for sys.ThreadCPU().Total()-t0 < d {
		}
	}()
	<-done
}

// BenchmarkProcsList is one listing of the host's processes, with the CPU
// it costs (the kernel's part included) per listing, by each program.
func BenchmarkProcsList(b *testing.B) {
	it, err := OpenProcs()
	if err != nil {
		b.Skip(err)
	}
	defer it.Close()
	recs, err := openRecords()
	if err != nil {
		b.Fatal(err)
	}
	byRecords := &Procs{recs: recs, index: map[int]int{}, comms: map[int]string{}, next: map[int]string{}}
	defer byRecords.Close()
	run := func(b *testing.B, it *Procs) {
		var procs []ProcTime
		b.ReportAllocs()
		c0 := sys.ProcessCPU()
		for b.Loop() {
			if procs, err = it.List(procs[:0]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(sys.ProcessCPU().Sub(c0).Total().Nanoseconds())/float64(b.N), "cpu-ns/op")
		b.ReportMetric(float64(len(procs)), "procs")
	}
	if it.Walking() {
		b.Run("walker", func(b *testing.B) { run(b, it) })
	}
	b.Run("records", func(b *testing.B) { run(b, byRecords) })
}
