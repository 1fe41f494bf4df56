// Package pytarget runs a benchmark's Python target: a script under a
// CPython, pinned to one core, that counts its own work and writes the
// count to a file when sent SIGUSR1 (as the scenarios' busypoll does), so
// that a benchmark measures what a tool costs it against its own count.
package pytarget

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/test/scenario"
)

// Find returns the newest CPython of this machine that cpuwhy reads, or
// "" when there is none.
func Find() string {
	for _, g := range []string{"/root/.pyenv/versions/3.13.*/bin/python3.13", "/root/.pyenv/versions/3.12.*/bin/python3.12", "/usr/bin/python3.11"} {
		if m, _ := filepath.Glob(g); len(m) > 0 {
			return m[0]
		}
	}
	return ""
}

// Target is a running Python target.
type Target struct {
	cmd       *exec.Cmd
	countFile string
}

// Launch writes script into dir as name and runs it under python, pinned
// to cpu, with the path of its count file as its argument; it returns once
// the script prints "ready". The target dies with the benchmark.
func Launch(python string, script []byte, name string, cpu int, dir string) (*Target, error) {
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, script, 0o644); err != nil {
		return nil, err
	}
	p := &Target{countFile: filepath.Join(dir, name+".count")}
	p.cmd = exec.Command("taskset", "-c", strconv.Itoa(cpu), python, path, p.countFile)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	buf := make([]byte, 16)
	if n, err := stdout.Read(buf); err != nil || !strings.HasPrefix(string(buf[:n]), "ready") {
		p.Stop()
		return nil, fmt.Errorf("%s did not get ready: %q %v", python, buf[:n], err)
	}
	return p, nil
}

// PID is the interpreter's.
func (p *Target) PID() int { return p.cmd.Process.Pid }

// Stop kills and reaps the interpreter.
func (p *Target) Stop() {
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
}

// Count asks the target for its count of work so far.
func (p *Target) Count() (uint64, error) {
	os.Remove(p.countFile)
	if err := p.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		return 0, err
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if data, err := os.ReadFile(p.countFile); err == nil {
			return strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(string(data), "calls=")), 10, 64)
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no count file 5s after SIGUSR1")
		}
		time.Sleep(time.Millisecond)
	}
}

// runtime is the interpreter's main thread's time on a CPU (schedstat).
func (p *Target) runtime() (time.Duration, error) {
	st, err := proc.FS{}.Schedstat(p.PID(), p.PID())
	if err != nil {
		return 0, err
	}
	return st.OnCPU, nil
}

// Measure returns the target's rates over window, per wall second and
// per second of its main thread's CPU, as scenario.Busypoll's.
func (p *Target) Measure(ctx context.Context, window time.Duration) (scenario.Rates, error) {
	c0, err := p.Count()
	if err != nil {
		return scenario.Rates{}, err
	}
	r0, err := p.runtime()
	if err != nil {
		return scenario.Rates{}, err
	}
	start := time.Now()
	select {
	case <-time.After(window):
	case <-ctx.Done():
		return scenario.Rates{}, ctx.Err()
	}
	c1, err := p.Count()
	if err != nil {
		return scenario.Rates{}, err
	}
	r1, err := p.runtime()
	if err != nil || r1 <= r0 {
		return scenario.Rates{}, fmt.Errorf("the Python target did not run for %v (%v)", window, err)
	}
	n := float64(c1 - c0)
	return scenario.Rates{Wall: n / time.Since(start).Seconds(), CPU: n / (r1 - r0).Seconds()}, nil
}
