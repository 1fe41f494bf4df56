package sys

import (
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/test/privtest"
	"golang.org/x/sys/unix"
)

// hangGuard bounds a Wait that must be woken: far longer than any wakeup
// takes, it only turns a missing wakeup into a failure instead of a hang.
const hangGuard = time.Minute

func TestPerfWaiterWake(t *testing.T) {
	w, err := NewPerfWaiter()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Wake()
	if woken, err := w.Wait(hangGuard); err != nil || !woken {
		t.Fatalf("Wait after Wake: woken %v, %v; want woken", woken, err)
	}
	// The wake was taken: with nothing else, the next Wait times out.
	if woken, err := w.Wait(time.Millisecond); err != nil || woken {
		t.Fatalf("second Wait: woken %v, %v; want a timeout", woken, err)
	}
	go func() {
		time.Sleep(10 * time.Millisecond)
		w.Wake()
	}()
	if woken, err := w.Wait(hangGuard); err != nil || !woken {
		t.Fatalf("Wait woken from another goroutine: woken %v, %v", woken, err)
	}
}

// TestPerfWaiterWatermark samples a spinning thread of this process into
// a ring with a watermark of one page: the kernel wakes the waiter once a
// page of samples is written, and not before (the ring then holds at
// least that much).
func TestPerfWaiterWatermark(t *testing.T) {
	var stop atomic.Bool
	tids := make(chan int)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tids <- unix.Gettid()
		for !stop.Load() {
		}
	}()
	tid := <-tids
	defer stop.Store(true)

	page := 4096
	attr := PerfEventAttr{
		Type: PerfTypeSoftware, Config: PerfCountSWCPUClock,
		Sample:      uint64(time.Millisecond),
		Sample_type: PerfSampleTID | PerfSampleIP | PerfSampleTime,
		Bits:        PerfBitWatermark | PerfBitExcludeHv,
		Wakeup:      uint32(page),
	}
	ev, err := OpenPerfEvent(&attr, tid, -1, 4)
	if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOENT) {
		privtest.Require(t, "perf_event_open: "+err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	w, err := NewPerfWaiter()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Add(ev); err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		woken, err := w.Wait(hangGuard)
		if err != nil || !woken {
			t.Fatalf("round %d: woken %v, %v: the kernel never woke the waiter at its watermark", round, woken, err)
		}
		// The kernel wakes each time the head passes another
		// watermark's worth of bytes from the ring's start (its
		// wakeup mark moves by the watermark), not from the reader's
		// tail: after a read that went past a mark, the next wakeup
		// comes with less than a watermark unread (4032 bytes after a
		// first read of 4192, once).
		head := ev.Head() - ev.meta.Data_tail
		if abs := ev.Head(); abs < uint64((round+1)*page) {
			t.Errorf("round %d: woken with the head at %d, before the watermark's mark at %d", round, abs, (round+1)*page)
		}
		n := ev.Read(func([]byte) {})
		t.Logf("round %d: %d bytes, %d records", round, head, n)
	}
}
