package hotspot

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/sys"
)

// The attach protocol of HotSpot on Linux (JDK 6 to 21:
// src/hotspot/os/linux/attachListener_linux.cpp), as jcmd speaks it:
//
//   - the JVM listens on /tmp/.java_pid<PID> (its own /tmp and PID) once
//     its Attach Listener thread runs;
//   - that thread starts when the JVM gets SIGQUIT while a file
//     .attach_pid<PID>, owned by the JVM's effective user or root, exists
//     in its working directory or /tmp; without the file, SIGQUIT prints
//     a thread dump on the JVM's stdout instead (so the file is created
//     first, and checked);
//   - a request is "1\0" (the protocol version), the command and three
//     arguments, each ended by a NUL; the answer is the result code as
//     decimal text and a newline, then the command's output, until the
//     JVM closes the connection.
const (
	protocolVersion = "1"
	// maxResponse bounds what is read of an answer: Compiler.perfmap
	// answers with nothing, an error with a line or two.
	maxResponse = 64 << 10
)

// request encodes one attach request: jcmd's "jcmd" command with the
// diagnostic command as its first argument.
func request(cmd string, args ...string) ([]byte, error) {
	if len(args) > 3 {
		return nil, fmt.Errorf("at most 3 arguments, not %d", len(args))
	}
	var b bytes.Buffer
	for _, s := range append([]string{protocolVersion, cmd}, append(args, "", "", "")[:3]...) {
		if strings.IndexByte(s, 0) >= 0 {
			return nil, fmt.Errorf("a NUL in %q", s)
		}
		b.WriteString(s)
		b.WriteByte(0)
	}
	return b.Bytes(), nil
}

// ErrRefused is wrapped by the errors of a request the JVM answered with
// a failure (an unknown command, a JVM older than Compiler.perfmap).
var ErrRefused = errors.New("the JVM refused the request")

// parseResponse reads the JVM's answer: the result code, then the output.
// A code other than 0, or output that is an exception (jcmd's commands
// answer 0 and print the exception when they fail), is ErrRefused with
// the first line of the output.
func parseResponse(b []byte) (string, error) {
	codeText, out, ok := bytes.Cut(b, []byte{'\n'})
	if !ok {
		return "", fmt.Errorf("an answer without a result code: %q", first(b))
	}
	code, err := strconv.Atoi(string(codeText))
	if err != nil {
		return "", fmt.Errorf("a result code that is not a number: %q", first(codeText))
	}
	if code != 0 {
		return "", fmt.Errorf("%w (code %d): %s", ErrRefused, code, first(out))
	}
	line := first(out)
	if strings.Contains(line, "Exception") || strings.HasPrefix(line, "Unknown diagnostic command") {
		return "", fmt.Errorf("%w: %s", ErrRefused, line)
	}
	return string(out), nil
}

// first is the first line of b, cut to 200 bytes, for a message.
func first(b []byte) string {
	line, _, _ := bytes.Cut(b, []byte{'\n'})
	if len(line) > 200 {
		line = line[:200]
	}
	return string(line)
}

// attacher asks one JVM to run diagnostic commands.
type attacher struct {
	fs    proc.FS
	pid   int // the host's
	nspid int // the JVM's own (its file names)
	root  string
	// wait bounds how long the JVM may take to start its listener and to
	// answer: a JVM on a loaded machine starts the thread in tens of
	// milliseconds, one at a safepoint that long.
	wait time.Duration
}

// run runs diagnostic command cmd in the JVM, starting its attach
// listener first when it has none, and returns its output. Every check
// that keeps the JVM from harm (it catches SIGQUIT; the trigger file is
// in place and its own) comes before the signal.
func (a *attacher) run(cmd string) (string, error) {
	st, err := a.fs.Status(a.pid)
	if err != nil {
		return "", err
	}
	tmp, err := sys.OpenRootDir(a.root, "/tmp")
	if err != nil {
		return "", fmt.Errorf("opening the JVM's /tmp: %w", err)
	}
	defer tmp.Close()
	socket := ".java_pid" + strconv.Itoa(a.nspid)
	conn, err := tmp.DialUnix(socket, st.EUID, a.wait)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, unix.ECONNREFUSED) {
			return "", err
		}
		trigger, err := a.startListener(tmp, st)
		if trigger != "" {
			// The JVM looks for the trigger when its signal thread
			// gets to the signal, some time after it was sent: the
			// file stays until the listener answers, or the wait is
			// over (then the JVM, if it still looks, finds none and
			// prints a thread dump; the wait is long for that).
			defer tmp.Remove(trigger)
		}
		if err != nil {
			return "", err
		}
		if conn, err = a.dialWhenReady(tmp, socket, st.EUID); err != nil {
			return "", err
		}
	}
	defer conn.Close()
	req, err := request("jcmd", cmd)
	if err != nil {
		return "", err
	}
	conn.SetDeadline(time.Now().Add(a.wait))
	if _, err := conn.Write(req); err != nil {
		return "", fmt.Errorf("sending %q to the JVM: %w", cmd, err)
	}
	resp, err := io.ReadAll(io.LimitReader(conn, maxResponse))
	if err != nil {
		return "", fmt.Errorf("reading the JVM's answer to %q: %w", cmd, err)
	}
	return parseResponse(resp)
}

// startListener makes the JVM start its attach listener: the trigger
// file, then SIGQUIT, sent only to a process that still catches it. It
// returns the trigger's name, for the caller to remove once the listener
// answered, when it created it.
func (a *attacher) startListener(tmp *sys.RootDir, st proc.Status) (string, error) {
	if st.SigCgt&(1<<(unix.SIGQUIT-1)) == 0 {
		return "", errors.New("the JVM does not catch SIGQUIT (started with -Xrs, or still starting): a SIGQUIT would end it, so it is not sent")
	}
	if err := a.attachDisabled(); err != nil {
		return "", err
	}
	trigger := ".attach_pid" + strconv.Itoa(a.nspid)
	if err := tmp.CreateEmpty(trigger, st.EUID, st.EGID); err != nil {
		// One that exists may be another tool's, doing the same: it
		// is not ours to remove, nor to trust.
		return "", fmt.Errorf("creating the attach trigger: %w", err)
	}
	return trigger, sys.Signal(a.pid, unix.SIGQUIT, func() error {
		// The pidfd is open: the process it names is the one checked.
		now, err := a.fs.Status(a.pid)
		if err != nil {
			return err
		}
		if now.SigCgt&(1<<(unix.SIGQUIT-1)) == 0 {
			return errors.New("the JVM no longer catches SIGQUIT")
		}
		// Any program may catch SIGQUIT and still die of it (Go's
		// runtime does): only a JVM gets one.
		if maps, err := a.fs.Maps(a.pid); err != nil || !IsJVM(maps) {
			return fmt.Errorf("process %d is no longer a JVM (%v)", a.pid, err)
		}
		if owner, _, err := tmp.Owner(trigger); err != nil || owner != st.EUID {
			return fmt.Errorf("the attach trigger %s/%s is not in place (owner %d): %v", tmp.Path(), trigger, owner, err)
		}
		return nil
	})
}

// attachDisabled is an error when the JVM's command line turns its attach
// mechanism off: SIGQUIT would print a thread dump on its stdout.
func (a *attacher) attachDisabled() error {
	cmdline, err := a.fs.ReadCapped(1<<20, strconv.Itoa(a.pid), "cmdline")
	if err != nil {
		return fmt.Errorf("reading the JVM's command line: %w", err)
	}
	for _, arg := range bytes.Split(cmdline, []byte{0}) {
		if string(arg) == "-XX:+DisableAttachMechanism" {
			return errors.New("the JVM runs with -XX:+DisableAttachMechanism")
		}
	}
	return nil
}

// dialWhenReady connects to the listener's socket once it appears, within
// a.wait.
func (a *attacher) dialWhenReady(tmp *sys.RootDir, socket string, uid int) (net.Conn, error) {
	deadline := time.Now().Add(a.wait)
	pause := 10 * time.Millisecond
	for {
		c, err := tmp.DialUnix(socket, uid, a.wait)
		if err == nil {
			return c, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the JVM started no attach listener within %v: %w", a.wait, err)
		}
		time.Sleep(pause)
		pause = min(2*pause, 200*time.Millisecond)
	}
}
