package verdict

import (
	"fmt"
	"strings"

	"github.com/cpuwhy/cpuwhy/internal/syscalls"
)

// error_loop: the same call failing with the same errno, retried at once
// without looking at the error.
//
// Thresholds: one errno (not EAGAIN, which is busy_poll's) of one syscall
// at LoopRate or more (rules.go), ErrorShare or more of that syscall's
// calls, and either half of LoopShare or more of all the thread's calls
// (a loop of that call and the one provoking its error), or, judged by
// rounds, less than RetryWait of waiting per failure (a round of many
// calls that never waits: socket, connect refused, reads until EAGAIN,
// close, nanosleep(0), again).

const (
	// ErrorShare is the part of a syscall's calls that must fail with
	// the same errno for an error loop: one failure in ten is a client
	// going away, nine in ten is a loop that never looks at the error.
	ErrorShare = 0.9

	// RetryWait is the time, in nanoseconds, the thread must spend in
	// waiting calls (syscalls.Waits: sleeps, polls, futex waits) per
	// failure for its retries to be paced rather than a loop. A real
	// client's round makes several calls (socat: thirteen, one of them
	// the failing connect), so the failing call's share of them says
	// nothing; whether the round waits does. nanosleep(0) and a poll
	// that returns at once take the timer slack (50 µs by default) plus
	// a wake-up, about 100 µs on a busy machine (socat's nanosleep(0):
	// 87 µs); a backoff waits a millisecond or more.
	RetryWait = 250_000.0
)

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
	if n/o.Seconds < LoopRate || n/float64(best.Count) < ErrorShare {
		return nil
	}
	// The failing call may alternate with the one that provokes the
	// error (a send, then the receive that reports the ICMP error), so
	// it needs only half of LoopShare of the thread's calls; a longer
	// round is judged by its waits.
	waitNs, waitsKnown := waitingTime(t)
	byShare := n/total >= LoopShare/2
	byRounds := waitsKnown && waitNs/n < RetryWait
	if !byShare && !byRounds {
		return nil
	}
	v := newVerdict(ErrorLoop, t)
	v.Syscall, v.Errno, v.FD = str(best.Name), str(bestErr), fdOf(best)
	v.atSyscall(t, best.Name)
	v.Summary = fmt.Sprintf("thread %s calls %s in a loop that ignores its failure: it fails with %s (%s) every time and is retried at once",
		t.Name, best.Name, bestErr, errnoMeaning(bestErr))
	ev := []string{
		cpuLine(t),
		fmt.Sprintf("%s%s failed with %s %s (%.1f%% of its calls; %.1f%% of all the thread's calls)",
			best.Name, onFD(best), bestErr, rate(n/o.Seconds), pct(n, float64(best.Count)), pct(n, total)),
	}
	if waitsKnown {
		ev = append(ev, fmt.Sprintf("each round makes %.1f calls and waits %s in all between two failures%s",
			total/n, micros(waitNs/n), waitsLine(t)))
	}
	v.Evidence = append(ev, stackLine(t)...)
	v.Advice = "handle the error instead of retrying at once: " + errnoAdvice(bestErr) + "; back off (sleep, exponential) between retries of a failing call"
	return v
}

// waitingTime is the time the thread spent in waiting calls, in
// nanoseconds, and whether it is known: every waiting call it made was
// timed (an untimed sleep may have been long), or it made none.
func waitingTime(t *Thread) (float64, bool) {
	var ns float64
	for _, s := range t.Syscalls {
		if !syscalls.Waits(s.Name) || s.Count == 0 {
			continue
		}
		if s.Timed == 0 {
			return 0, false
		}
		ns += float64(s.TotalNs)
	}
	return ns, true
}

// waitsLine names the waiting calls of a thread with their mean time.
func waitsLine(t *Thread) string {
	var parts []string
	for _, s := range t.Syscalls {
		if syscalls.Waits(s.Name) && s.Count > 0 {
			parts = append(parts, fmt.Sprintf("%s %s, %s each", s.Name, rate(s.Rate), micros(float64(s.MeanNs))))
		}
	}
	if len(parts) == 0 {
		return " (no waiting call)"
	}
	return " (" + strings.Join(parts, "; ") + ")"
}

// micros formats nanoseconds as µs or ms.
func micros(ns float64) string {
	if ns >= 1e6 {
		return fmt.Sprintf("%.1f ms", ns/1e6)
	}
	return fmt.Sprintf("%.0f µs", ns/1e3)
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
