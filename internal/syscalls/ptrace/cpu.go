package ptrace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// cpuTime is the CPU time used so far by the threads of the target alive
// now, from /proc/PID/task/*/schedstat (nanoseconds, unlike stat's ticks).
func (s *session) cpuTime() (time.Duration, error) {
	stats, err := s.fs.ThreadSchedstats(s.pid)
	if err != nil {
		return 0, err
	}
	if len(stats) == 0 {
		return 0, fmt.Errorf("no schedstat readable for %d", s.pid)
	}
	var total time.Duration
	for _, st := range stats {
		total += st.OnCPU
	}
	return total, nil
}

// cpuRate measures the target's CPU rate, in CPUs, over d.
func (s *session) cpuRate(ctx context.Context, d time.Duration) (float64, error) {
	before, err := s.cpuTime()
	if err != nil {
		return 0, err
	}
	start := time.Now()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	after, err := s.cpuTime()
	if err != nil {
		return 0, err
	}
	return float64(after-before) / float64(time.Since(start)), nil
}

// estimateSlowdown sets Profile.Slowdown and explains it in a note.
//
// The honest measure would be the target's syscall rate untraced against
// traced, but without tracing nothing counts its syscalls. What can be
// measured untraced is its CPU rate. A program doing the same work per
// loop spends at least as much CPU per loop traced as untraced (each
// syscall now also pays two ptrace stops), so its speed traced, relative
// to untraced, is at most its CPU rate traced over its CPU rate untraced.
// That bound is what Slowdown holds; the real ratio is lower, and for a
// syscall-bound program much lower (busypoll: see the package tests).
func (s *session) estimateSlowdown(base float64, baseErr error) {
	p := s.prof
	window := p.Duration.Seconds()
	if window <= 0 {
		return
	}
	rate := float64(s.calls) / window
	note := fmt.Sprintf("ptrace stops the target twice per syscall: it made %.0f syscalls/s while traced; expect it to be much slower than untraced", rate)
	traced := 0.0
	if s.cpuOK {
		traced = float64(s.cpuEnd-s.cpuStart) / float64(p.Duration)
	}
	switch {
	case baseErr != nil || !s.cpuOK:
		err := baseErr
		if err == nil {
			err = errors.New("CPU time while traced unknown")
		}
		note += fmt.Sprintf(" (slowdown not measured: %v)", err)
	case base < minBaselineCPU:
		note += fmt.Sprintf(" (slowdown not measured: it used only %.0f%% of a CPU before)", base*100)
	default:
		p.Slowdown = min(traced/base, 1)
		note += fmt.Sprintf(" (it used %.0f%% of a CPU traced against %.0f%% untraced, so it ran at most %.0f%% of its untraced speed)",
			traced*100, base*100, p.Slowdown*100)
	}
	p.Notes = append(p.Notes, note)
}

// parseTracerPid returns the TracerPid field of a /proc/.../status text, 0
// when absent or malformed.
func parseTracerPid(b []byte) int {
	const field = "\nTracerPid:"
	i := bytes.Index(b, []byte(field))
	if i < 0 {
		return 0
	}
	b = b[i+len(field):]
	if j := bytes.IndexByte(b, '\n'); j >= 0 {
		b = b[:j]
	}
	v, err := strconv.Atoi(string(bytes.TrimSpace(b)))
	if err != nil || v < 0 {
		return 0
	}
	return v
}
