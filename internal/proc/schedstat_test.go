package proc

import (
	"errors"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"
)

func TestParseSchedstat(t *testing.T) {
	tests := []struct {
		in   string
		want Sched
		ok   bool
	}{
		{"5278133 1024 87\n", Sched{OnCPU: 5278133, Waiting: 1024, Slices: 87}, true},
		{"0 0 0", Sched{}, true},
		{"5278133 1024\n", Sched{}, false},
		{"a b c\n", Sched{}, false},
		{"-1 0 0\n", Sched{}, false},
		{"", Sched{}, false},
	}
	for _, tt := range tests {
		got, err := ParseSchedstat([]byte(tt.in))
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseSchedstat(%q) = %+v, %v; want %+v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// The calling thread's own schedstat grows as it runs.
func TestSchedstatSelf(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pid, tid := os.Getpid(), syscall.Gettid()
	before, err := FS{}.Schedstat(pid, tid)
	if err != nil {
		t.Fatal(err)
	}
	// Spin until the thread's own clock shows 10 ms more, or give up.
	var after Sched
	for end := time.Now().Add(5 * time.Second); after.OnCPU-before.OnCPU < 10*time.Millisecond; {
		if time.Now().After(end) {
			t.Fatalf("schedstat did not move in 5 s of spinning: %+v then %+v", before, after)
		}
		if after, err = (FS{}).Schedstat(pid, tid); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := (FS{}).Schedstat(pid, 1<<30); err == nil {
		t.Error("no error for a missing thread")
	}
}

func TestThreadSchedstatsSelf(t *testing.T) {
	pid := os.Getpid()
	stats, err := FS{}.ThreadSchedstats(pid)
	if err != nil {
		t.Fatal(err)
	}
	// The Go runtime runs several threads; the main one has run.
	if len(stats) < 2 || stats[pid].OnCPU <= 0 {
		t.Errorf("schedstats of our own threads: %+v", stats)
	}
	if _, err := (FS{}).ThreadSchedstats(1 << 30); !errors.Is(err, ErrGone) {
		t.Errorf("missing process: %v, want ErrGone", err)
	}
}

func FuzzParseSchedstat(f *testing.F) {
	f.Add([]byte("5278133 1024 87\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSchedstat(b)
		if err == nil && (s.OnCPU < 0 || s.Waiting < 0) {
			t.Fatalf("negative durations from %q: %+v", b, s)
		}
	})
}
