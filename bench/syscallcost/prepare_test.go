package main

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/cpuwhy/cpuwhy/test/scenario"
)

// fakeMachine has the binaries in installed, and tracefs mounted when
// tracefs is set; mounting it fails with mountErr.
type fakeMachine struct {
	installed map[string]bool
	tracefs   bool
	mountErr  error
	mounts    int
}

func (m *fakeMachine) lookPath(file string) error {
	if !m.installed[file] {
		return exec.ErrNotFound
	}
	return nil
}

func (m *fakeMachine) tracefsMounted() bool { return m.tracefs }

func (m *fakeMachine) mountTracefs() error {
	m.mounts++
	if m.mountErr != nil {
		return m.mountErr
	}
	m.tracefs = true
	return nil
}

func TestPrepare(t *testing.T) {
	all := map[string]bool{"bpftrace": true, "perf": true, "strace": true, "/tmp/cpuwhy": true}
	tests := []struct {
		name        string
		tracer      string
		argv0       string
		machine     fakeMachine
		wantSkip    string // "" when it runs
		wantMounted bool
	}{
		{"installed, tracefs there", "bpftrace", "bpftrace", fakeMachine{installed: all, tracefs: true}, "", false},
		{"tracefs mounted for it", "bpftrace", "bpftrace", fakeMachine{installed: all}, "", true},
		{"perf trace needs tracefs too", "perf-trace", "perf", fakeMachine{installed: all}, "", true},
		{"tracefs cannot be mounted", "bpftrace", "bpftrace", fakeMachine{installed: all, mountErr: errors.New("operation not permitted")},
			"needs tracefs, not mounted at /sys/kernel/tracing and mounting it failed: operation not permitted", false},
		{"not installed", "bpftrace", "bpftrace", fakeMachine{installed: map[string]bool{}}, "bpftrace is not installed", false},
		{"strace needs no tracefs", "strace", "strace", fakeMachine{installed: all}, "", false},
		{"cpuwhy needs no tracefs", "cpuwhy", "/tmp/cpuwhy", fakeMachine{installed: all}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mounted bool
			if got := prepare(&tt.machine, tt.tracer, tt.argv0, &mounted); got != tt.wantSkip {
				t.Errorf("prepare = %q, want %q", got, tt.wantSkip)
			}
			if mounted != tt.wantMounted {
				t.Errorf("mounted = %v, want %v", mounted, tt.wantMounted)
			}
		})
	}
}

// TestTableSkips: a skipped tracer keeps its row, with the reason where its
// rounds would be, and the others are measured as usual.
func TestTableSkips(t *testing.T) {
	o := options{cpuwhy: "cpuwhy", tracers: []string{"cpuwhy", "bpftrace", "strace"}}
	failed := &startError{err: errors.New("exited before the window (exit status 1)"),
		output: []byte("ERROR: Could not resolve tracepoint | raw_syscalls\nmore\n")}
	var b bytes.Buffer
	writeTable(&b, o, o.tracers, map[string][]scenario.Rates{
		"cpuwhy": {{Wall: 0.9, CPU: 0.85}},
		"strace": {{Wall: 0.1, CPU: 0.2}},
	}, map[string]string{"bpftrace": "round 1: " + failed.Error()})
	rows := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(rows) != 5 {
		t.Fatalf("table of %d lines, want a header, a rule and 3 rows:\n%s", len(rows), b.String())
	}
	want := "| bpftrace | `bpftrace -e tracepoint:raw_syscalls:sys_exit /pid == PID/ { @[args->id] = count(); }` | - | - | - | skipped: round 1: exited before the window (exit status 1): ERROR: Could not resolve tracepoint \\| raw_syscalls |"
	if rows[3] != want {
		t.Errorf("bpftrace row\n%s\nwant\n%s", rows[3], want)
	}
	// No floor measured: no share of it.
	if !strings.HasPrefix(rows[2], "| cpuwhy | ") || !strings.Contains(rows[2], "| 90.0% | 85.0% | - | 90.0% |") {
		t.Errorf("cpuwhy row %q", rows[2])
	}
}
