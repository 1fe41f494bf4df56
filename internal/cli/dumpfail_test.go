package cli

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// TestDumpNothingToShow covers the dumps that have no stack to show (issue
// 18, item 7): each says in one line what happened and exits 1, where
// dump printed a list of failed threads, or of "(unmapped)" frames, and
// exited 0.
func TestDumpNothingToShow(t *testing.T) {
	t.Run("every thread already traced", func(t *testing.T) {
		target := startProgram(t, "compute")
		pid := target.Process.Pid
		tracer := startProgram(t, "tracer", strconv.Itoa(pid))
		code, out, errOut := runBinary(t, nil, "dump", strconv.Itoa(pid))
		if code != 1 {
			t.Fatalf("exit %d, want 1; stdout %q, stderr %q", code, out, errOut)
		}
		assertOneLine(t, errOut, fmt.Sprintf("PID %d (compute): no thread could be stopped: every thread is already traced by PID %d (tracer), and a thread has one tracer at a time", pid, tracer.Process.Pid))
		if out != "" {
			t.Errorf("stdout %q, want nothing", out)
		}
	})

	t.Run("itself", func(t *testing.T) {
		// The shell's PID is the one cpuwhy runs as once exec'd.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "/bin/sh", "-c", `exec "$0" dump $$`, cpuwhyBinary(t))
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Fatalf("cpuwhy dump of itself: %v, want exit 1; stdout %q, stderr %q", err, out.String(), errOut.String())
		}
		assertOneLine(t, errOut.String(), "is this cpuwhy dump itself: a process cannot stop its own threads")
	})

	t.Run("target exits during the dump", func(t *testing.T) {
		target := startProgram(t, "exitontrace", "200")
		pid := target.Process.Pid
		code, out, errOut := runBinary(t, nil, "dump", strconv.Itoa(pid))
		if code != 1 {
			t.Fatalf("exit %d, want 1; stdout %q, stderr %q", code, out, errOut)
		}
		assertOneLine(t, errOut, fmt.Sprintf("PID %d (exitontrace) exited during the dump: ", pid), "of its 201 threads were read before it ended")
		if out != "" {
			t.Errorf("stdout %q, want nothing", out)
		}
	})
}
