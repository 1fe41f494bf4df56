package python_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/cpuprofile"
	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/stack"
	"github.com/cpuwhy/cpuwhy/internal/stack/python"
)

// TestGILHolders: threads taking turns on the GIL, recorded (with the
// chains read by the kernel's walk, and live), have the GIL, read on a
// timer while recording, counted as held by the workers, each of them,
// and by no other thread: the main thread waits on an event without it.
// The counts add up to the readings, and nearly every reading names a
// thread known.
func TestGILHolders(t *testing.T) {
	each(t, func(t *testing.T, py interpreter) {
		pid := start(t, py, "threads", "3")
		workers := map[int]bool{}
		tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*")
		for _, task := range tasks {
			if tid, _ := strconv.Atoi(filepath.Base(task)); tid != pid {
				workers[tid] = true
			}
		}
		if len(workers) != 3 {
			t.Fatalf("%d threads besides the main one, want 3", len(workers))
		}
		for _, live := range []bool{false, true} {
			res, err := cpuprofile.Record(context.Background(), pid, cpuprofile.Options{FS: proc.FS{}, Duration: 2 * time.Second,
				NsPID: proc.FS{}.Identity(pid).NsPID, Runtimes: []stack.Runtime{python.Runtime{LiveOnly: live}}, Locks: true})
			if err != nil {
				t.Fatal(err)
			}
			l := res.Lock
			if l == nil {
				t.Fatalf("live %v: no GIL counted; notes %q", live, res.Notes)
			}
			t.Logf("live %v: %d samples, GIL read at %d: held %v, free %d, by a thread not known %d (%s)", live, res.Samples, l.Readings, l.Held, l.Free, l.Unknown, l.Err)
			held := 0
			for tid, n := range l.Held {
				held += n
				if !workers[tid] {
					t.Errorf("live %v: thread %d, no worker, held the GIL at %d samples", live, tid, n)
				}
			}
			if held+l.Free+l.Unknown != l.Readings {
				t.Errorf("live %v: %d held + %d free + %d unknown != %d readings", live, held, l.Free, l.Unknown, l.Readings)
			}
			// 2 s at 10 ms: 200 ticks, fewer on a loaded machine; each
			// worker runs Python for a share of the window.
			if l.Every == 0 || l.Readings < 50 || len(l.Held) != 3 || l.Unknown > l.Readings/10 {
				t.Errorf("live %v: want the GIL read on a timer 50 times or more, held by each of the 3 workers", live)
			}
		}
	})
}

// TestGILAtSamples: a recording without the timer (`record`) counts the
// GIL at its samples, each read by the kernel's walk with the chain.
func TestGILAtSamples(t *testing.T) {
	each(t, func(t *testing.T, py interpreter) {
		pid := start(t, py, "threads", "2")
		res := record(t, pid, time.Second)
		l := res.Lock
		if l == nil || l.Every != 0 {
			t.Fatalf("GIL %+v; notes %q", l, res.Notes)
		}
		t.Logf("%d samples, GIL read at %d: held %v, free %d, unknown %d (%s)", res.Samples, l.Readings, l.Held, l.Free, l.Unknown, l.Err)
		if l.Readings == 0 || len(l.Held) == 0 || l.Readings > res.Samples {
			t.Errorf("want the GIL read at some of the %d samples, held by the workers", res.Samples)
		}
	})
}

// TestGILNotPython: a process that runs no CPython has no GIL counted.
func TestGILNotPython(t *testing.T) {
	r, err := stack.New(os.Getpid(), stack.Options{FS: proc.FS{}, Runtimes: []stack.Runtime{python.Runtime{}}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if l := r.LockHolders(); l != nil {
		t.Errorf("a Go process has a GIL: %+v", l)
	}
}

// TestGILHeldAsleep: a thread that keeps the GIL while it sleeps (a
// ctypes.PyDLL call to usleep, 100 ms at a time) is on a CPU at hardly
// any sample, but the GIL read on a timer while recording shows it held
// the GIL most, more than each of the two workers that take it in
// between, whose turns last a switch interval (5 ms).
func TestGILHeldAsleep(t *testing.T) {
	each(t, func(t *testing.T, py interpreter) {
		pid := start(t, py, "gilhog", "2")
		hold := 0
		comms, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/comm")
		for _, c := range comms {
			if b, err := os.ReadFile(c); err == nil && string(b) == "hold\n" {
				hold, _ = strconv.Atoi(filepath.Base(filepath.Dir(c)))
			}
		}
		if hold == 0 {
			t.Fatal("no thread named hold")
		}
		res, err := cpuprofile.Record(context.Background(), pid, cpuprofile.Options{FS: proc.FS{}, Duration: 2 * time.Second,
			NsPID: proc.FS{}.Identity(pid).NsPID, Locks: true})
		if err != nil {
			t.Fatal(err)
		}
		l := res.Lock
		if l == nil || l.Every == 0 {
			t.Fatalf("the GIL was not read on a timer: %+v; notes %q", l, res.Notes)
		}
		t.Logf("GIL read every %v, %d readings: held %v (hold is %d), free %d, unknown %d", l.Every, l.Readings, l.Held, hold, l.Free, l.Unknown)
		for tid, n := range l.Held {
			if tid != hold && n >= l.Held[hold] {
				t.Errorf("thread %d held the GIL at %d readings, the sleeping holder %d at %d", tid, n, hold, l.Held[hold])
			}
		}
		// 2 s at 10 ms: 200 ticks, fewer on a loaded machine.
		if l.Readings < 50 {
			t.Errorf("%d readings of the GIL in 2 s", l.Readings)
		}
	})
}
