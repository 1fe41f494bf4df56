package containertest

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cpuwhy/cpuwhy/test/privtest"
)

// envSandbox marks the test binary re-executed as a sandbox's PID 1.
const envSandbox = "CPUWHY_CONTAINERTEST_SANDBOX"

// Sandbox is a network namespace with only loopback up, and a PID
// namespace around everything started in it, for host programs (a
// Debian server and its load generator) that must reach nothing but each
// other: unlike a Container, no root of its own and no cgroups. One
// SIGKILL to its PID 1 ends everything in it.
type Sandbox struct {
	holder *exec.Cmd
	netns  *os.File // /proc/<holder>/ns/net
	pidns  *os.File // /proc/<holder>/ns/pid
	mu     sync.Mutex
	cmds   []*exec.Cmd
}

// NewSandbox makes a sandbox, torn down when the test ends. The package's
// TestMain must call Main.
func NewSandbox(tb testing.TB) *Sandbox {
	tb.Helper()
	s := &Sandbox{holder: exec.Command("/proc/self/exe", "-test.run=^$")}
	s.holder.Env = []string{envSandbox + "=1"}
	s.holder.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWPID,
		// If the test binary dies, the sandbox and all in it die too.
		Pdeathsig: syscall.SIGKILL,
	}
	var stderr strings.Builder
	s.holder.Stderr = &stderr
	out, err := s.holder.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := startOnLockedThread(s.holder); err != nil {
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL) {
			privtest.Require(tb, fmt.Sprintf("cannot create network and PID namespaces: %v", err))
		}
		tb.Fatalf("starting the sandbox: %v", err)
	}
	tb.Cleanup(s.close)
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(out).ReadString('\n')
		line <- l
	}()
	select {
	case l := <-line:
		if l != "ready\n" {
			tb.Fatalf("sandbox did not start: %q; stderr: %s", l, stderr.String())
		}
	case <-time.After(10 * time.Second):
		tb.Fatalf("sandbox not ready after 10s; stderr: %s", stderr.String())
	}
	pid := s.holder.Process.Pid
	if s.netns, err = os.Open(fmt.Sprintf("/proc/%d/ns/net", pid)); err != nil {
		tb.Fatal(err)
	}
	if s.pidns, err = os.Open(fmt.Sprintf("/proc/%d/ns/pid", pid)); err != nil {
		tb.Fatal(err)
	}
	return s
}

// holdSandbox is PID 1 of a sandbox: it brings loopback up, says so, and
// then only reaps the orphans the kernel hands it (an nginx worker whose
// master died) until it is killed.
func holdSandbox() {
	if err := loopbackUp(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	chld := make(chan os.Signal, 1)
	signal.Notify(chld, syscall.SIGCHLD)
	fmt.Println("ready")
	for range chld {
		for {
			pid, err := unix.Wait4(-1, nil, unix.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
	os.Exit(0) // not reached
}

// Start starts cmd inside the sandbox; the sandbox's teardown kills and
// reaps it. cmd must not set Pdeathsig: it is forked from a thread that
// ends soon after.
func (s *Sandbox) Start(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread is left in the sandbox's
		// namespaces, and the runtime ends it when this goroutine
		// returns.
		runtime.LockOSThread()
		if err := unix.Setns(int(s.netns.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("entering the sandbox's network namespace: %w", err)
			return
		}
		if err := unix.Setns(int(s.pidns.Fd()), unix.CLONE_NEWPID); err != nil {
			errc <- fmt.Errorf("entering the sandbox's PID namespace: %w", err)
			return
		}
		errc <- cmd.Start()
	}()
	if err := <-errc; err != nil {
		return fmt.Errorf("starting %s in the sandbox: %w", cmd.Path, err)
	}
	s.mu.Lock()
	s.cmds = append(s.cmds, cmd)
	s.mu.Unlock()
	return nil
}

// close kills the sandbox's PID 1, with which the kernel kills every
// process in its PID namespace, and reaps what the test started.
func (s *Sandbox) close() {
	// PID 1 of a namespace ignores every signal it has no handler for,
	// except SIGKILL from outside.
	s.holder.Process.Kill()
	// The dying PID 1 waits until every process of its namespace is
	// reaped, those started from outside included: reap them first.
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.cmds {
		c.Wait() // reports the kill; nothing to learn from it
	}
	s.holder.Wait()
	for _, f := range []*os.File{s.netns, s.pidns} {
		if f != nil {
			f.Close()
		}
	}
}
