// Package spinner starts processes that idle and then spin, the spikes
// that `cpuwhy watch` and `cpuwhy agent` are tested on. A spinner is the
// test binary itself, started again with an environment variable that
// Main reads first thing in TestMain: no compiler is needed, and a
// spinner's life (idle, spin, exit or not) is set per process.
package spinner

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const env = "CPUWHY_SPINNER"

// Main runs a spinner when the environment asks for one, and returns
// otherwise. Call it first in TestMain.
func Main() {
	v := os.Getenv(env)
	if v == "" {
		return
	}
	parts := strings.Split(v, ",")
	if len(parts) != 3 {
		fmt.Fprintf(os.Stderr, "spinner: %s=%q: want IDLE,SPIN,NAME\n", env, v)
		os.Exit(2)
	}
	// /proc/self/comm is the main thread's, the process's name in
	// /proc/PID/stat that a watch matches.
	if err := os.WriteFile("/proc/self/comm", []byte(parts[2]), 0); err != nil {
		fmt.Fprintf(os.Stderr, "spinner: naming itself %q: %v\n", parts[2], err)
		os.Exit(2)
	}
	idle, err1 := time.ParseDuration(parts[0])
	spin, err2 := time.ParseDuration(parts[1])
	if err1 != nil || err2 != nil {
		fmt.Fprintf(os.Stderr, "spinner: %s=%q: bad duration\n", env, v)
		os.Exit(2)
	}
	fmt.Println("ready")
	time.Sleep(idle)
	end := time.Now().Add(spin)
	n := 0
	for spin == 0 || time.Now().Before(end) {
		for i := 0; i < 1_000_000; i++ {
			n += i ^ n
		}
	}
	os.Exit(n & 0) // the loop's result is used: it cannot be optimised away
}

// Spinner is a running spinner.
type Spinner struct {
	Cmd  *exec.Cmd
	PID  int
	done chan struct{}
}

// Name returns a process name no other process has: a test watches its
// spinners by name, not whatever else on the machine spins (another
// test's spinners included).
func Name() string {
	var b [4]byte
	rand.Read(b[:])
	return "spin" + hex.EncodeToString(b[:])
}

// Start starts a spinner named name (at most 15 bytes) that sleeps for
// idle, spins for spin (0: until killed) and exits. The test's cleanup
// kills it.
func Start(tb testing.TB, name string, idle, spin time.Duration) *Spinner {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env+"="+idle.String()+","+spin.String()+","+name)
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("starting a spinner: %v", err)
	}
	s := &Spinner{Cmd: cmd, PID: cmd.Process.Pid, done: make(chan struct{})}
	buf := make([]byte, 6)
	if _, err := out.Read(buf); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		tb.Fatalf("spinner %d did not start: %v", s.PID, err)
	}
	go func() {
		cmd.Wait()
		close(s.done)
	}()
	tb.Cleanup(s.Stop)
	return s
}

// Stop kills the spinner and reaps it.
func (s *Spinner) Stop() {
	s.Cmd.Process.Kill()
	<-s.done
}

// Done is closed when the spinner has exited and been reaped.
func (s *Spinner) Done() <-chan struct{} { return s.done }

// String names the spinner for messages.
func (s *Spinner) String() string { return "spinner " + strconv.Itoa(s.PID) }
