package scenario

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cpuwhy/cpuwhy/internal/proc"
)

// Busypoll is a running busypoll scenario that can be asked for its own
// count of recvfrom calls: the ground truth that tests and benchmarks
// compare tools with.
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

// LaunchBusypoll builds busypoll and starts it pinned to cpu, for
// programs that are not tests (benchmarks); its count file lives in dir.
// It dies with its parent, even one killed with SIGKILL. Stop ends it.
func LaunchBusypoll(cpu int, dir string) (*Busypoll, error) {
	prog, err := Compile("busypoll")
	if err != nil {
		return nil, err
	}
	countFile := filepath.Join(dir, "count")
	cmd := exec.Command("taskset", "-c", strconv.Itoa(cpu), prog.Path)
	cmd.Env = append(os.Environ(), "SCENARIO_COUNT_FILE="+countFile)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	b := &Busypoll{Cmd: cmd, countFile: countFile}
	buf := make([]byte, 16)
	if n, err := stdout.Read(buf); err != nil || !strings.HasPrefix(string(buf[:n]), "ready") {
		b.Stop()
		return nil, fmt.Errorf("busypoll did not get ready: %q %v", buf[:n], err)
	}
	return b, nil
}

// PID is the scenario's process ID.
func (b *Busypoll) PID() int { return b.Cmd.Process.Pid }

// Stop kills and reaps the scenario.
func (b *Busypoll) Stop() {
	_ = b.Cmd.Process.Kill()
	_ = b.Cmd.Wait()
}

// Count asks the scenario for its number of recvfrom calls so far.
func (b *Busypoll) Count() (uint64, error) {
	os.Remove(b.countFile)
	if err := b.Cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		return 0, err
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		data, err := os.ReadFile(b.countFile)
		if err == nil {
			n, err := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(string(data), "calls=")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("count file holds %q: %w", data, err)
			}
			return n, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no count file 5s after SIGUSR1: %w", err)
		}
		time.Sleep(time.Millisecond)
	}
}

// Rates are a call rate per wall second and per second of NatThreadMain on
// a CPU. The first is what a user sees. The second leaves out the time a
// small shared machine gives to other work, which is no cost of a tool,
// but it flatters tools that stop the target (strace, perf trace), whose
// cost is mostly time the target is not on a CPU at all.
type Rates struct{ Wall, CPU float64 }

// Measure returns the scenario's rates over window.
func (b *Busypoll) Measure(ctx context.Context, window time.Duration) (Rates, error) {
	c0, err := b.Count()
	if err != nil {
		return Rates{}, err
	}
	r0, err := b.Runtime()
	if err != nil {
		return Rates{}, err
	}
	start := time.Now()
	select {
	case <-time.After(window):
	case <-ctx.Done():
		return Rates{}, ctx.Err()
	}
	c1, err := b.Count()
	if err != nil {
		return Rates{}, err
	}
	r1, err := b.Runtime()
	if err != nil {
		return Rates{}, err
	}
	if r1 <= r0 {
		return Rates{}, fmt.Errorf("NatThreadMain did not run for %v", window)
	}
	calls := float64(c1 - c0)
	return Rates{Wall: calls / time.Since(start).Seconds(), CPU: calls / (r1 - r0).Seconds()}, nil
}

// Runtime is NatThreadMain's time on a CPU so far (schedstat).
func (b *Busypoll) Runtime() (time.Duration, error) {
	if b.poller == 0 {
		comms, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/comm", b.PID()))
		for _, c := range comms {
			if data, err := os.ReadFile(c); err == nil && strings.TrimSpace(string(data)) == "NatThreadMain" {
				b.poller, _ = strconv.Atoi(filepath.Base(filepath.Dir(c)))
			}
		}
		if b.poller == 0 {
			return 0, errors.New("busypoll has no NatThreadMain thread")
		}
	}
	st, err := proc.FS{}.Schedstat(b.PID(), b.poller)
	return st.OnCPU, err
}

// Calls is Count for tests.
func (b *Busypoll) Calls(tb testing.TB) uint64 {
	tb.Helper()
	n, err := b.Count()
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// Rate is the scenario's recvfrom calls per second of NatThreadMain's time
// on a CPU, over d: per CPU second rather than per wall second, since what
// a tracer costs, it costs on the poller's own CPU time.
func (b *Busypoll) Rate(tb testing.TB, d time.Duration) float64 {
	tb.Helper()
	r, err := b.Measure(context.Background(), d)
	if err != nil {
		tb.Fatal(err)
	}
	return r.CPU
}

// BestRate is the highest of five Rates over d. On the small shared
// machines tests run on, the rate per CPU second of one window drifts by
// ±20% from the next (measured: 3.0M to 4.5M calls in consecutive
// half-seconds with nothing else running), so comparisons of a rate before
// and after something are made between best windows.
func (b *Busypoll) BestRate(tb testing.TB, d time.Duration) float64 {
	tb.Helper()
	best := 0.0
	for range 5 {
		best = max(best, b.Rate(tb, d))
	}
	return best
}

// RelativeRate is b's rate per CPU second over control's, both measured
// over the same windows of d: the median of three. A tool's lasting cost to
// b shows as a drop of this ratio, while the drift of the machine's own
// speed from one second to the next, which moves both alike, cancels out.
func (b *Busypoll) RelativeRate(tb testing.TB, control *Busypoll, d time.Duration) float64 {
	tb.Helper()
	var ratios []float64
	for range 3 {
		cb0, cc0 := b.Calls(tb), control.Calls(tb)
		rb0, rc0 := b.runtime(tb), control.runtime(tb)
		time.Sleep(d)
		cb1, cc1 := b.Calls(tb), control.Calls(tb)
		rb1, rc1 := b.runtime(tb), control.runtime(tb)
		rb := float64(cb1-cb0) / (rb1 - rb0).Seconds()
		rc := float64(cc1-cc0) / (rc1 - rc0).Seconds()
		ratios = append(ratios, rb/rc)
	}
	slices.Sort(ratios)
	return ratios[1]
}

func (b *Busypoll) runtime(tb testing.TB) time.Duration {
	tb.Helper()
	r, err := b.Runtime()
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// Pin moves every thread of the scenario to CPU cpu, so that a comparison
// with a twin pinned elsewhere is not blurred by either moving between
// cores that run at different speeds.
func (b *Busypoll) Pin(tb testing.TB, cpu int) {
	tb.Helper()
	var set unix.CPUSet
	set.Set(cpu)
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", b.PID()))
	if err != nil {
		tb.Fatal(err)
	}
	for _, task := range tasks {
		tid, _ := strconv.Atoi(task.Name())
		if err := unix.SchedSetaffinity(tid, &set); err != nil {
			tb.Fatalf("pinning thread %d to CPU %d: %v", tid, cpu, err)
		}
	}
}
