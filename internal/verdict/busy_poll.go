package verdict

import (
	"fmt"

	"github.com/cpuwhy/cpuwhy/internal/syscalls"
)

// busy_poll: a non-blocking fd read in a loop that never waits for it to
// be ready, each read failing with EAGAIN (nothing to read) and made again
// at once.
//
// Thresholds: the syscall with the most EAGAIN failures on the thread has
// them at LoopRate or more, and they are LoopShare or more of all the
// thread's calls. Both are in rules.go, shared with the other loops of
// fruitless calls, where their reasons are.

func busyPoll(o *Observation, t *Thread) *Verdict {
	total := float64(t.calls())
	var best *syscalls.Syscall
	for i := range t.Syscalls {
		s := &t.Syscalls[i]
		if best == nil || s.Errors["EAGAIN"] > best.Errors["EAGAIN"] {
			best = s
		}
	}
	if best == nil {
		return nil
	}
	n := float64(best.Errors["EAGAIN"])
	if n/o.Seconds < LoopRate || n/total < LoopShare {
		return nil
	}
	v := newVerdict(BusyPoll, t)
	v.Syscall, v.Errno, v.FD = str(best.Name), str("EAGAIN"), fdOf(best)
	v.atSyscall(t, best.Name)
	where := onFD(best)
	if spread(best) {
		// No fd takes most of the calls: the loop goes round many of
		// them, reading each whether or not it is ready.
		v.FD, v.FDCount = str(fdsLine(best)), max(best.FDCount, len(best.FDs))
		where = fmt.Sprintf(" on %d fds (%s)", v.FDCount, fdsLine(best))
		v.Summary = fmt.Sprintf("thread %s reads many non-blocking fds in turn, ready or not: %s fails with EAGAIN on nearly every one, and the round starts again at once",
			t.Name, best.Name)
		v.Advice = "read only the fds that are ready: take the ready list from epoll_wait (or poll's revents) instead of trying every socket; " +
			"and block in the wait with a timeout instead of going round again at once"
	} else {
		v.Summary = fmt.Sprintf("thread %s polls a non-blocking fd in a loop: %s keeps failing with EAGAIN (nothing to read) and is called again at once, never waiting for data",
			t.Name, best.Name)
		v.Advice = "wait for the fd to become ready before reading it again: poll/epoll_wait/select with a timeout (or a blocking socket, or SO_RCVTIMEO); " +
			"in an event loop, re-arm the fd and return to the loop on EAGAIN instead of retrying"
	}
	v.Evidence = append([]string{
		cpuLine(t),
		fmt.Sprintf("%s%s returned EAGAIN %s (%.1f%% of its %s calls, %.1f%% of all the thread's calls)",
			best.Name, where, rate(n/o.Seconds), pct(n, float64(best.Count)), best.Name, pct(n, total)),
	}, stackLine(t)...)
	return v
}
