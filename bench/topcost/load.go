package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/cpuwhy/cpuwhy/test/scenario"
)

// readyTimeout bounds how long one load process may take to start its
// threads; ten thousand threads start in well under a second.
const readyTimeout = 60 * time.Second

func compileThreads() (scenario.Program, error) {
	return scenario.Compile("threads")
}

// load is the background processes of one level.
type load struct {
	cmds []*exec.Cmd
}

// startLoad starts procs processes of the threads scenario holding threads
// threads between them, the first with busy busy threads. On error, what
// was started is stopped.
func startLoad(ctx context.Context, prog scenario.Program, threads, procs, busy int) (*load, error) {
	l := &load{}
	for i := range procs {
		n := threads / procs
		if i < threads%procs {
			n++
		}
		args := []string{strconv.Itoa(n)}
		if i == 0 && busy > 0 {
			args = append(args, strconv.Itoa(min(busy, n)))
		}
		if err := l.start(ctx, prog.Path, args...); err != nil {
			l.stop()
			return nil, err
		}
	}
	return l, nil
}

func (l *load) start(ctx context.Context, path string, args ...string) error {
	cmd := exec.Command(path, args...)
	cmd.Stderr = os.Stderr
	// Killed with the benchmark even when it is killed with SIGKILL and its
	// deferred cleanup never runs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", path, err)
	}
	l.cmds = append(l.cmds, cmd)
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err == nil && line != "ready\n" {
			err = fmt.Errorf("first line is %q", line)
		}
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			return fmt.Errorf("%s %v did not become ready: %w", path, args, err)
		}
		return nil
	case <-time.After(readyTimeout):
		return fmt.Errorf("%s %v did not print ready within %v", path, args, readyTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stop kills and reaps every process of the load.
func (l *load) stop() error {
	var errs []error
	for _, cmd := range l.cmds {
		if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			errs = append(errs, err)
		}
		_ = cmd.Wait() // "signal: killed" is the expected outcome
	}
	l.cmds = nil
	return errors.Join(errs...)
}
