package verdict

import (
	"fmt"
	"slices"
	"strings"

	"github.com/cpuwhy/cpuwhy/internal/syscalls"
)

// The wording and the small measures the rules' evidence shares.

func str(s string) *string { return &s }

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }

// Rate formats a rate per second as reports print it: 950/s, 12.3k/s,
// 1.05M/s.
func Rate(r float64) string { return rate(r) }

func rate(r float64) string {
	switch {
	case r >= 1e6:
		return fmt.Sprintf("%.2fM/s", r/1e6)
	case r >= 1e4:
		return fmt.Sprintf("%.0fk/s", r/1e3)
	case r >= 1e3:
		return fmt.Sprintf("%.1fk/s", r/1e3)
	}
	return fmt.Sprintf("%.0f/s", r)
}

func pct(part, whole float64) float64 {
	if whole <= 0 {
		return 0
	}
	return 100 * part / whole
}

// cpuLine is the evidence line of a thread's CPU.
func cpuLine(t *Thread) string {
	s := fmt.Sprintf("thread %s (TID %d) used %.1f%% of a core: %.1f%% user, %.1f%% system",
		t.Name, t.TID, t.CPU.Total, t.CPU.User, t.CPU.System)
	if t.Demand >= t.CPU.Total+10 {
		// Demand is the part of the window it ran or waited to run; its
		// CPU the part it ran: the three parts below add up to the window.
		s += fmt.Sprintf("; of the window it ran %.0f%%, waited for a CPU %.0f%% and slept or blocked %.0f%%",
			t.CPU.Total, t.Demand-t.CPU.Total, max(0, 100-t.Demand))
	}
	return s
}

// stackLine is the evidence line of the hottest stack, when sampled.
func stackLine(t *Thread) []string {
	if len(t.Stacks) == 0 || t.Samples == 0 {
		return nil
	}
	s := t.Stacks[0]
	frames := s.Frames
	if len(frames) > 6 {
		frames = frames[:6]
	}
	return []string{fmt.Sprintf("%.0f%% of its samples in %s", pct(float64(s.Count), float64(t.Samples)), strings.Join(frames, " <- "))}
}

func fdOf(s *syscalls.Syscall) *string {
	if len(s.FDs) == 0 {
		return nil
	}
	return str(fdString(s.FDs[0]))
}

// spread reports whether no fd takes half of a syscall's calls.
func spread(s *syscalls.Syscall) bool {
	return len(s.FDs) > 1 && 2*s.FDs[0].Count < s.Count
}

// fdsLine describes the busiest fds of a spread syscall: "fd 14 (udp
// 0.0.0.0:54920) 0.1%, fd 15 (...) 0.1%, ...".
func fdsLine(s *syscalls.Syscall) string {
	var parts []string
	for i, fd := range s.FDs {
		if i == 2 {
			parts = append(parts, "...")
			break
		}
		parts = append(parts, fmt.Sprintf("fd %s %.1f%%", fdString(fd), pct(float64(fd.Count), float64(s.Count))))
	}
	return strings.Join(parts, ", ")
}

func fdString(fd syscalls.FD) string {
	if fd.Desc == "" {
		return fmt.Sprint(fd.FD)
	}
	return fmt.Sprintf("%d (%s)", fd.FD, fd.Desc)
}

// onFD says "on fd 3 (udp 0.0.0.0:1701)" when the syscall has one.
func onFD(s *syscalls.Syscall) string {
	if fd := fdOf(s); fd != nil {
		return " on fd " + *fd
	}
	return ""
}

// hottest returns the syscall of the family with the highest by().
func hottest(t *Thread, family []string, by func(*syscalls.Syscall) uint64) *syscalls.Syscall {
	var best *syscalls.Syscall
	for i := range t.Syscalls {
		s := &t.Syscalls[i]
		if slices.Contains(family, s.Name) && (best == nil || by(s) > by(best)) {
			best = s
		}
	}
	return best
}
