package cli

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// silentTerminal runs the built cpuwhy with a terminal of its own (a new
// session whose controlling terminal is a pty, in the foreground, TERM
// set) that never answers a query, as `script`, a serial console and some
// ssh and CI ptys behave, and returns what it wrote to the terminal and
// how long it took.
func silentTerminal(t *testing.T, args ...string) ([]byte, time.Duration) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlocking the pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("naming the pty: %v", err)
	}
	slave, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, cpuwhyBinary(t), args...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "TERM=xterm-256color"}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	var out bytes.Buffer
	read := make(chan struct{})
	go func() {
		io.Copy(&out, master) // until the slave side is closed: EIO
		close(read)
	}()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	err = cmd.Wait()
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("cpuwhy %q on a terminal: %v\n%s", args, err, out.Bytes())
	}
	select {
	case <-read:
	case <-time.After(5 * time.Second):
		t.Fatal("the terminal's output did not end")
	}
	return out.Bytes(), elapsed
}

// TestNoTerminalQueries: no command asks the terminal anything, and none
// waits for a reply. The TUI library's start-up asked every command's
// terminal for its background colour (OSC 11) and waited up to 5 s for
// an answer that a silent terminal never gives: --help took 5.0 s there,
// a diagnosis 8.7 s instead of 3.7 s.
func TestNoTerminalQueries(t *testing.T) {
	cmd := startProgram(t, "compute")
	pid := strconv.Itoa(cmd.Process.Pid)
	// The same diagnosis with no terminal at all is the yardstick: the
	// stall was 5 s, and a run on a terminal may cost a little more for
	// progress lines, never seconds (at half or double this machine's
	// speed alike).
	_, _, _ = runBinary(t, nil, "-d", "1s", pid)
	start := time.Now()
	if code, _, errOut := runBinary(t, nil, "-d", "1s", pid); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	piped := time.Since(start)

	for _, tc := range []struct {
		name  string
		args  []string
		bound time.Duration
	}{
		{"help", []string{"--help"}, 2 * time.Second},
		{"diagnosis", []string{"-d", "1s", pid}, piped + 2*time.Second},
		{"top batch", []string{"top", "-n", "1", "-d", "0.2", pid}, 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, elapsed := silentTerminal(t, tc.args...)
			t.Logf("%v on a silent terminal (no terminal: %v for the diagnosis)", elapsed.Round(time.Millisecond), piped.Round(time.Millisecond))
			for _, q := range [][]byte{[]byte("\x1b]10;?"), []byte("\x1b]11;?"), []byte("\x1b[6n"), []byte("\x1b[c")} {
				if bytes.Contains(out, q) {
					t.Errorf("it asked the terminal %q", q)
				}
			}
			if elapsed > tc.bound {
				t.Errorf("took %v, want at most %v: it waited for the terminal", elapsed, tc.bound)
			}
		})
	}
}
