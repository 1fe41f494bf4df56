package scenario

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Busypoll is a running busypoll scenario that can be asked for its own
// count of recvfrom calls: the ground truth tests compare tracers with.
type Busypoll struct {
	Cmd       *exec.Cmd
	countFile string
	poller    int // TID of NatThreadMain
}

// StartBusypoll builds and starts busypoll on the host until the test ends.
func StartBusypoll(tb testing.TB, args ...string) *Busypoll {
	tb.Helper()
	file := filepath.Join(tb.TempDir(), "count")
	cmd := Build(tb, "busypoll").Start(tb, []string{"SCENARIO_COUNT_FILE=" + file}, args...)
	return &Busypoll{Cmd: cmd, countFile: file}
}

// PID is the scenario's process ID.
func (b *Busypoll) PID() int { return b.Cmd.Process.Pid }

// Calls asks the scenario for its number of recvfrom calls so far.
func (b *Busypoll) Calls(tb testing.TB) uint64 {
	tb.Helper()
	os.Remove(b.countFile)
	if err := b.Cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		tb.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		data, err := os.ReadFile(b.countFile)
		if err == nil {
			n, err := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(string(data), "calls=")), 10, 64)
			if err != nil {
				tb.Fatalf("count file holds %q: %v", data, err)
			}
			return n
		}
		if time.Now().After(deadline) {
			tb.Fatalf("no count file 5s after SIGUSR1: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
}

// BestRate is the highest of three Rates over d: on a small shared machine
// any one window may be slowed by something else, so comparisons of a
// rate before and after something are made between best windows.
func (b *Busypoll) BestRate(tb testing.TB, d time.Duration) float64 {
	tb.Helper()
	best := 0.0
	for range 3 {
		best = max(best, b.Rate(tb, d))
	}
	return best
}

// Rate is the scenario's recvfrom calls per second of NatThreadMain's time
// on a CPU, over d. Per second on a CPU rather than per wall second: on a
// small shared machine the poller loses the CPU to other work now and
// then, which is no cost of a tracer; what a tracer costs, it costs on the
// poller's own CPU time.
func (b *Busypoll) Rate(tb testing.TB, d time.Duration) float64 {
	tb.Helper()
	c0, r0 := b.Calls(tb), b.runtime(tb)
	time.Sleep(d)
	c1, r1 := b.Calls(tb), b.runtime(tb)
	if r1 <= r0 {
		tb.Fatalf("NatThreadMain did not run for %v", d)
	}
	return float64(c1-c0) / (r1 - r0).Seconds()
}

func (b *Busypoll) runtime(tb testing.TB) time.Duration {
	tb.Helper()
	if b.poller == 0 {
		comms, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/comm", b.PID()))
		for _, c := range comms {
			if data, err := os.ReadFile(c); err == nil && strings.TrimSpace(string(data)) == "NatThreadMain" {
				b.poller, _ = strconv.Atoi(filepath.Base(filepath.Dir(c)))
			}
		}
		if b.poller == 0 {
			tb.Fatal("busypoll has no NatThreadMain thread")
		}
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/schedstat", b.PID(), b.poller))
	if err != nil {
		tb.Fatal(err)
	}
	ns, err := strconv.ParseInt(strings.Fields(string(data))[0], 10, 64)
	if err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ns)
}
