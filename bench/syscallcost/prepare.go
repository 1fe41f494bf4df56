package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// tracefsDir is where tracefs is mounted on a current system (systemd
// mounts it at boot; a minimal VM or container may not have it).
const tracefsDir = "/sys/kernel/tracing"

// machine is what preparing a tracer asks of the machine; the real one
// looks and mounts, a test's says what it is told to.
type machine interface {
	lookPath(file string) error
	tracefsMounted() bool
	mountTracefs() error
}

// needsTracefs lists the tracers that attach to tracepoints through tracefs:
// bpftrace resolves `tracepoint:` probes by reading its events directory,
// and perf trace opens the syscall tracepoints there.
var needsTracefs = map[string]bool{"bpftrace": true, "perf-trace": true}

// prepare readies the machine for tracer name, whose command starts with
// argv0, and says why it cannot run ("" when it can). mounted is set when
// prepare mounted tracefs, for the caller to unmount it at the end.
func prepare(m machine, name, argv0 string, mounted *bool) string {
	if err := m.lookPath(argv0); err != nil {
		return fmt.Sprintf("%s is not installed", argv0)
	}
	if needsTracefs[name] && !m.tracefsMounted() {
		if err := m.mountTracefs(); err != nil {
			return fmt.Sprintf("needs tracefs, not mounted at %s and mounting it failed: %v", tracefsDir, err)
		}
		*mounted = true
	}
	return ""
}

// host is the machine this benchmark runs on.
type host struct{}

func (host) lookPath(file string) error {
	_, err := exec.LookPath(file)
	return err
}

func (host) tracefsMounted() bool {
	// debugfs mounts tracefs under itself on first access, and the tools
	// look there too.
	for _, dir := range []string{tracefsDir, "/sys/kernel/debug/tracing"} {
		if _, err := os.Stat(dir + "/events"); err == nil {
			return true
		}
	}
	return false
}

// mountTracefs mounts tracefs as systemd would at boot. A benchmark is no
// part of the product, so its one mount does not go through internal/sys.
func (host) mountTracefs() error {
	err := syscall.Mount("tracefs", tracefsDir, "tracefs", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, "")
	if err != nil {
		return fmt.Errorf("mount -t tracefs tracefs %s: %w", tracefsDir, err)
	}
	return nil
}

func unmountTracefs() error {
	if err := syscall.Unmount(tracefsDir, 0); err != nil {
		return fmt.Errorf("umount %s: %w", tracefsDir, err)
	}
	return nil
}

// startError is a tracer that could not start or exited before its
// window: its row is skipped, the run goes on.
type startError struct {
	err    error
	output []byte // what the tracer printed, if it ran
}

// Error is one line for a table cell: the tracer's own first line of
// output says most (bpftrace's "ERROR: ..."), and a pipe would split the
// cell.
func (e *startError) Error() string {
	msg := e.err.Error()
	if line, _, _ := strings.Cut(strings.TrimSpace(string(e.output)), "\n"); line != "" {
		msg += ": " + line
	}
	return strings.ReplaceAll(msg, "|", `\|`)
}

func (e *startError) Unwrap() error { return e.err }
