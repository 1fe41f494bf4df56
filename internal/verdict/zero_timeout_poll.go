package verdict

import (
	"fmt"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/syscalls"
)

// zero_timeout_poll: poll, select or epoll_wait with a zero (or
// near-zero) timeout in a loop, returning at once with nothing ready.
//
// Thresholds: the poll call returning 0 (no fd ready) at LoopRate or more,
// and LoopShare or more of all the thread's calls. Both are in rules.go,
// shared with the other loops of fruitless calls, where their reasons are.

func zeroTimeoutPoll(o *Observation, t *Thread) *Verdict {
	total := float64(t.calls())
	s := hottest(t, syscalls.PollCalls, func(s *syscalls.Syscall) uint64 { return s.Zero })
	if s == nil {
		return nil
	}
	n := float64(s.Zero)
	if n/o.Seconds < LoopRate || n/total < LoopShare {
		return nil
	}
	v := newVerdict(ZeroTimeoutPoll, t)
	v.Syscall, v.FD = str(s.Name), fdOf(s)
	v.atSyscall(t, s.Name)
	v.Summary = fmt.Sprintf("thread %s polls with a zero (or near-zero) timeout in a loop: %s returns at once with nothing ready, and is called again",
		t.Name, s.Name)
	ev := fmt.Sprintf("%s%s returned 0 (no fd ready) %s (%.1f%% of the thread's calls)", s.Name, onFD(s), rate(n/o.Seconds), pct(n, total))
	if s.Timed > 0 {
		ev += fmt.Sprintf("; each call took %s on average, so it did not wait", time.Duration(s.MeanNs))
	}
	v.Evidence = append([]string{cpuLine(t), ev}, stackLine(t)...)
	v.Advice = "give the poll a real timeout (-1 to block until an fd is ready, or the time to the next timer) instead of 0; if other work must run, wake the loop with an eventfd or a pipe"
	return v
}
