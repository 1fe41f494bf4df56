package servers

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

	"github.com/cpuwhy/cpuwhy/internal/privtest"
)

// envHolder marks the test binary re-executed as the sandbox's PID 1.
const envHolder = "CPUWHY_E2E_SERVERS_SANDBOX"

func TestMain(m *testing.M) {
	if os.Getenv(envHolder) == "1" {
		holdSandbox() // never returns
	}
	os.Exit(m.Run())
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

// loopbackUp sets IFF_UP on lo. Only called in the sandbox's own network
// namespace: the host's interfaces are never touched.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket for loopback: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("reading lo flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bringing lo up: %w", err)
	}
	return nil
}

// sandbox is a network namespace with only loopback up, and a PID
// namespace around everything started in it, so that one SIGKILL to its
// PID 1 ends it all.
type sandbox struct {
	holder *exec.Cmd
	netns  *os.File // /proc/<holder>/ns/net
	pidns  *os.File // /proc/<holder>/ns/pid
	mu     sync.Mutex
	cmds   []*exec.Cmd
}

// newSandbox makes a sandbox; it is torn down when the test ends.
func newSandbox(t *testing.T) *sandbox {
	t.Helper()
	s := &sandbox{holder: exec.Command("/proc/self/exe", "-test.run=^$")}
	s.holder.Env = []string{envHolder + "=1"}
	s.holder.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWPID,
		// If the test binary dies, the sandbox and all in it die too.
		Pdeathsig: syscall.SIGKILL,
	}
	var stderr strings.Builder
	s.holder.Stderr = &stderr
	out, err := s.holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := startOnLockedThread(s.holder); err != nil {
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL) {
			privtest.Require(t, fmt.Sprintf("cannot create network and PID namespaces: %v", err))
		}
		t.Fatalf("starting the sandbox: %v", err)
	}
	t.Cleanup(s.close)
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(out).ReadString('\n')
		line <- l
	}()
	select {
	case l := <-line:
		if l != "ready\n" {
			t.Fatalf("sandbox did not start: %q; stderr: %s", l, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("sandbox not ready after 10s; stderr: %s", stderr.String())
	}
	pid := s.holder.Process.Pid
	if s.netns, err = os.Open(fmt.Sprintf("/proc/%d/ns/net", pid)); err != nil {
		t.Fatal(err)
	}
	if s.pidns, err = os.Open(fmt.Sprintf("/proc/%d/ns/pid", pid)); err != nil {
		t.Fatal(err)
	}
	return s
}

// start starts cmd inside the sandbox. The sandbox's teardown kills and
// reaps it.
func (s *sandbox) start(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread is left in the sandbox's
		// namespaces, and the runtime ends it when this goroutine
		// returns. (So cmd must not use Pdeathsig, which would fire
		// then.)
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
func (s *sandbox) close() {
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

// The parent-death signal fires when the thread that forked the child
// exits, not the process, and the Go runtime ends a thread when a
// goroutine locked to it returns (as start's do). Forking the sandbox's
// PID 1 from one goroutine that stays locked to its thread for the life of
// the process keeps that from killing sandboxes at random.
var (
	forkerOnce sync.Once
	forker     = make(chan func())
)

func startOnLockedThread(cmd *exec.Cmd) error {
	forkerOnce.Do(func() {
		go func() {
			runtime.LockOSThread() // never unlocked: the thread must live
			for f := range forker {
				f()
			}
		}()
	})
	errc := make(chan error, 1)
	forker <- func() { errc <- cmd.Start() }
	return <-errc
}
