package sample_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/privtest"
	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/sample"
	"github.com/cpuwhy/cpuwhy/internal/scenario"
	"github.com/cpuwhy/cpuwhy/internal/sys"
)

// record runs sample.Record and skips (or fails, when privileges are
// required) only when the kernel refuses perf events outright.
func record(t *testing.T, pid int, opts sample.Options) *sample.Recording {
	t.Helper()
	rec, err := sample.Record(context.Background(), pid, opts)
	if errors.Is(err, sample.ErrPermission) || errors.Is(err, sample.ErrNotSupported) {
		privtest.Require(t, err.Error())
	}
	if err != nil {
		t.Fatalf("Record: %v", err)
	}
	for _, n := range rec.Notes {
		t.Logf("note: %s", n)
	}
	t.Logf("%d samples, %d lost, %d dropped, %d throttled, %d threads, in %v",
		len(rec.Samples), rec.Lost, rec.Dropped, rec.Throttled, len(rec.Threads), rec.Duration)
	return rec
}

func fdCount(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func checkNoLeak(t *testing.T) {
	before := fdCount(t)
	t.Cleanup(func() {
		if after := fdCount(t); after > before {
			t.Errorf("%d fds open after recording, %d before", after, before)
		}
	})
}

func TestRecordCompute(t *testing.T) {
	checkNoLeak(t)
	p := scenario.Build(t, "compute")
	cmd := p.Start(t, nil)
	pid := cmd.Process.Pid

	cpu0 := sys.ProcessCPU()
	rec := record(t, pid, sample.Options{Duration: time.Second})
	used := sys.ProcessCPU().Sub(cpu0)
	t.Logf("cpuwhy's own CPU while recording one hot thread at 99 Hz for %v: %v user + %v system = %.2f%% of a core",
		rec.Duration, used.User, used.System, 100*used.Total().Seconds()/rec.Duration.Seconds())

	if n := len(rec.Samples); n < 70 || n > 130 {
		t.Errorf("%d samples in 1 s at 99 Hz, want 70..130", n)
	}
	maps, err := proc.FS{}.Maps(pid)
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Readlink(filepath.Join("/proc", itoa(pid), "exe"))
	if err != nil {
		t.Fatal(err)
	}
	inExe := func(ip uint64) bool {
		for _, m := range maps {
			if m.Exec() && m.Path == exe && ip >= m.Start && ip < m.End {
				return true
			}
		}
		return false
	}
	bad := 0
	for _, s := range rec.Samples {
		name := rec.Threads[s.TID]
		switch {
		case name != "cruncher":
			t.Errorf("sample from thread %d %q, want cruncher", s.TID, name)
		case len(s.Stack) == 0:
			t.Errorf("sample of %d has no user stack", s.TID)
		case !s.UserRegsValid || !inExe(s.Regs.IP):
			t.Errorf("sample IP %#x (SP %#x) is not in %s's executable mapping", s.Regs.IP, s.Regs.SP, exe)
		default:
			continue
		}
		if bad++; bad > 5 {
			t.Fatal("too many bad samples")
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

var _ = exec.Command
var _ = syscall.Kill
