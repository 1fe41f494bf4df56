package main

import (
	"context"
	_ "embed"
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

//go:embed pypoll.py
var pypoll []byte

// target is what a tracer is measured on: its own count of calls.
type target interface {
	PID() int
	Measure(ctx context.Context, window time.Duration) (scenario.Rates, error)
}

// pythonTarget is pypoll.py under a CPython, pinned to one core: the
// Python busy poll, whose stacks `syscalls --stacks` reads the Python
// frame chain of in the kernel at each sampled call.
type pythonTarget struct {
	cmd       *exec.Cmd
	countFile string
}

// findPython is the newest CPython of this machine that cpuwhy reads.
func findPython() string {
	for _, g := range []string{"/root/.pyenv/versions/3.13.*/bin/python3.13", "/root/.pyenv/versions/3.12.*/bin/python3.12", "/usr/bin/python3.11"} {
		if m, _ := filepath.Glob(g); len(m) > 0 {
			return m[0]
		}
	}
	return ""
}

func launchPython(python string, cpu int, dir string) (*pythonTarget, error) {
	script := filepath.Join(dir, "pypoll.py")
	if err := os.WriteFile(script, pypoll, 0o644); err != nil {
		return nil, err
	}
	p := &pythonTarget{countFile: filepath.Join(dir, "pycount")}
	p.cmd = exec.Command("taskset", "-c", strconv.Itoa(cpu), python, script, p.countFile)
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

func (p *pythonTarget) PID() int { return p.cmd.Process.Pid }

func (p *pythonTarget) Stop() {
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
}

// count asks the target for its count of calls so far.
func (p *pythonTarget) count() (uint64, error) {
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
func (p *pythonTarget) runtime() (time.Duration, error) {
	st, err := proc.FS{}.Schedstat(p.PID(), p.PID())
	if err != nil {
		return 0, err
	}
	return st.OnCPU, nil
}

// Measure returns the target's rates over window, as Busypoll's.
func (p *pythonTarget) Measure(ctx context.Context, window time.Duration) (scenario.Rates, error) {
	c0, err := p.count()
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
	c1, err := p.count()
	if err != nil {
		return scenario.Rates{}, err
	}
	r1, err := p.runtime()
	if err != nil || r1 <= r0 {
		return scenario.Rates{}, fmt.Errorf("the Python target did not run for %v (%v)", window, err)
	}
	calls := float64(c1 - c0)
	return scenario.Rates{Wall: calls / time.Since(start).Seconds(), CPU: calls / (r1 - r0).Seconds()}, nil
}
