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

// TestGILHolders: threads taking turns on the GIL, recorded with the
// GIL's state read at each sample (by the kernel's walk, and live), have
// it counted as held by the workers, each of them, and by no other
// thread: the main thread waits on an event without it. The counts add
// up to the readings, and nearly every reading names a thread known.
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
				NsPID: proc.FS{}.Identity(pid).NsPID, Runtimes: []stack.Runtime{python.Runtime{LiveOnly: live}}})
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
			// Read with nearly every sample (each in the interpreter's
			// loop); each worker runs Python for a share of the window.
			if res.Samples < 20 || l.Readings < res.Samples*8/10 || len(l.Held) != 3 || l.Unknown > l.Readings/10 {
				t.Errorf("live %v: want the GIL read at 80%% of the samples, held by each of the 3 workers", live)
			}
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
