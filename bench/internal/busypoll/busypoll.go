// Package busypoll runs the seed's busy-poll scenario for benchmarks: the
// target whose own count of recvfrom calls measures what a tool costs it.
// (Tests use scenario.Busypoll, which reports through testing.TB.)
package busypoll

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/scenario"
)

// Target is a running busypoll, pinned to one core.
type Target struct {
	Cmd       *exec.Cmd
	countFile string
	poller    int // TID of NatThreadMain
}

// Start builds busypoll and starts it pinned to cpu; its count file lives
// in dir. It dies with the benchmark, even one killed with SIGKILL.
func Start(cpu int, dir string) (*Target, error) {
	prog, err := scenario.Compile("busypoll")
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
	t := &Target{Cmd: cmd, countFile: countFile}
	buf := make([]byte, 16)
	if n, err := stdout.Read(buf); err != nil || !strings.HasPrefix(string(buf[:n]), "ready") {
		t.Stop()
		return nil, fmt.Errorf("busypoll did not get ready: %q %v", buf[:n], err)
	}
	return t, nil
}

// PID is the target's process ID.
func (t *Target) PID() int { return t.Cmd.Process.Pid }

// Stop kills and reaps the target.
func (t *Target) Stop() {
	_ = t.Cmd.Process.Kill()
	_ = t.Cmd.Wait()
}

// Count asks the target for its recvfrom calls so far.
func (t *Target) Count() (uint64, error) {
	_ = os.Remove(t.countFile)
	if err := t.Cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		return 0, err
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if data, err := os.ReadFile(t.countFile); err == nil {
			if v, err := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(string(data), "calls=")), 10, 64); err == nil {
				return v, nil
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	return 0, errors.New("no count from the target")
}

// Rates are a call rate per wall second and per second of the poller on a
// CPU. The first is what a user sees; the second leaves out the time a
// shared machine gives to other work, which is no cost of a tool, but it
// flatters tools that stop the target (strace, perf trace), whose cost is
// mostly time the target is not on a CPU at all.
type Rates struct{ Wall, CPU float64 }

// Measure returns the target's rates over window.
func (t *Target) Measure(ctx context.Context, window time.Duration) (Rates, error) {
	c0, err := t.Count()
	if err != nil {
		return Rates{}, err
	}
	r0, err := t.runtime()
	if err != nil {
		return Rates{}, err
	}
	start := time.Now()
	select {
	case <-time.After(window):
	case <-ctx.Done():
		return Rates{}, ctx.Err()
	}
	c1, err := t.Count()
	if err != nil {
		return Rates{}, err
	}
	r1, err := t.runtime()
	if err != nil {
		return Rates{}, err
	}
	calls := float64(c1 - c0)
	return Rates{Wall: calls / time.Since(start).Seconds(), CPU: calls / (r1 - r0).Seconds()}, nil
}

// runtime is the poller thread's time on a CPU so far (schedstat).
func (t *Target) runtime() (time.Duration, error) {
	if t.poller == 0 {
		comms, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/comm", t.PID()))
		for _, c := range comms {
			if b, err := os.ReadFile(c); err == nil && strings.TrimSpace(string(b)) == "NatThreadMain" {
				t.poller, _ = strconv.Atoi(filepath.Base(filepath.Dir(c)))
			}
		}
		if t.poller == 0 {
			return 0, errors.New("busypoll has no NatThreadMain thread")
		}
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/schedstat", t.PID(), t.poller))
	if err != nil {
		return 0, err
	}
	ns, err := strconv.ParseInt(strings.Fields(string(data))[0], 10, 64)
	return time.Duration(ns), err
}
