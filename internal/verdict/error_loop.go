package verdict

import (
	"fmt"

	"github.com/cpuwhy/cpuwhy/internal/syscalls"
)

// error_loop: the same call failing with the same errno, retried at once
// without looking at the error.
//
// Thresholds: one errno (not EAGAIN, which is busy_poll's) of one syscall
// at LoopRate or more (rules.go), ErrorShare or more of that syscall's
// calls, and half of LoopShare or more of all the thread's calls.

// ErrorShare is the part of a syscall's calls that must fail with the
// same errno for an error loop: one failure in ten is a client going
// away, nine in ten is a loop that never looks at the error.
const ErrorShare = 0.9

func errorLoop(o *Observation, t *Thread) *Verdict {
	total := float64(t.calls())
	var best *syscalls.Syscall
	var bestErr string
	var bestN uint64
	for i := range t.Syscalls {
		s := &t.Syscalls[i]
		for e, n := range s.Errors {
			if e != "EAGAIN" && (n > bestN || n == bestN && e < bestErr) {
				best, bestErr, bestN = s, e, n
			}
		}
	}
	if best == nil {
		return nil
	}
	n := float64(bestN)
	// The failing call may alternate with the one that provokes the
	// error (a send, then the receive that reports the ICMP error), so
	// it needs only half of LoopShare of the thread's calls.
	if n/o.Seconds < LoopRate || n/float64(best.Count) < ErrorShare || n/total < LoopShare/2 {
		return nil
	}
	v := newVerdict(ErrorLoop, t)
	v.Syscall, v.Errno, v.FD = str(best.Name), str(bestErr), fdOf(best)
	v.atSyscall(t, best.Name)
	v.Summary = fmt.Sprintf("thread %s calls %s in a loop that ignores its failure: it fails with %s (%s) every time and is retried at once",
		t.Name, best.Name, bestErr, errnoMeaning(bestErr))
	v.Evidence = append([]string{
		cpuLine(t),
		fmt.Sprintf("%s%s failed with %s %s (%.1f%% of its calls; %.1f%% of all the thread's calls)",
			best.Name, onFD(best), bestErr, rate(n/o.Seconds), pct(n, float64(best.Count)), pct(n, total)),
	}, stackLine(t)...)
	v.Advice = "handle the error instead of retrying at once: " + errnoAdvice(bestErr) + "; back off (sleep, exponential) between retries of a failing call"
	return v
}

func errnoMeaning(e string) string {
	switch e {
	case "ECONNREFUSED":
		return "the peer's port is closed; on UDP a previous send drew an ICMP port unreachable"
	case "EBADF":
		return "the fd is not open"
	case "EINTR":
		return "a signal interrupted the call"
	case "ENOTCONN":
		return "the socket is not connected"
	case "EPIPE", "ECONNRESET":
		return "the peer closed the connection"
	case "ENOENT":
		return "no such file"
	case "EINVAL":
		return "an invalid argument"
	}
	return "see errno(3)"
}

func errnoAdvice(e string) string {
	switch e {
	case "ECONNREFUSED", "ENOTCONN", "EPIPE", "ECONNRESET":
		return "close or reconnect the socket when the peer is gone (on UDP, ECONNREFUSED reports an earlier send's ICMP error: drop or re-resolve that peer)"
	case "EBADF":
		return "stop using the fd once it is closed (a use-after-close bug)"
	case "EINTR":
		return "find what sends the signals so often (an interval timer, a profiler) or use SA_RESTART"
	}
	return "check the call's result and stop or fix the request on a permanent error"
}
