package verdict

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/syscalls"
)

// timer_storm: a thread waking on a timer far more often than once a
// millisecond (tiny sleeps, or a timerfd ticking fast), so that waking
// costs more than the work in between.
//
// Thresholds: sleeps (nanosleep, clock_nanosleep) or reads of a timerfd at
// TimerRate or more, and LoopShare or more of all the thread's calls
// (rules.go).

// TimerRate is the rate of sleeps or timer expirations of one thread
// above which the sleeps are shorter than a millisecond on average:
// waking that often costs more CPU than the work between wake-ups.
const TimerRate = 1000.0

func timerStorm(o *Observation, t *Thread) *Verdict {
	total := float64(t.calls())
	var n float64
	var which *syscalls.Syscall
	for i := range t.Syscalls {
		s := &t.Syscalls[i]
		c := uint64(0)
		switch {
		case slices.Contains(syscalls.SleepCalls, s.Name):
			c = s.Count
		case s.Name == "read" && len(s.FDs) > 0 && strings.Contains(s.FDs[0].Desc, "timerfd"):
			c = s.FDs[0].Count
		}
		if c > 0 && (which == nil || float64(c) > n) {
			n, which = float64(c), s
		}
	}
	if which == nil || n/o.Seconds < TimerRate || n/total < LoopShare {
		return nil
	}
	v := newVerdict(TimerStorm, t)
	v.Syscall, v.FD = str(which.Name), fdOf(which)
	v.atSyscall(t, which.Name)
	v.Summary = fmt.Sprintf("thread %s wakes up %s on a timer (%s): sleeps or ticks far shorter than a millisecond, so waking costs more than the work in between",
		t.Name, rate(n/o.Seconds), which.Name)
	ev := fmt.Sprintf("%s%s called %s (%.1f%% of the thread's calls)", which.Name, onFD(which), rate(n/o.Seconds), pct(n, total))
	if which.Timed > 0 {
		ev += fmt.Sprintf(", %s each on average", time.Duration(which.MeanNs))
	}
	v.Evidence = append([]string{cpuLine(t), ev}, stackLine(t)...)
	v.Advice = "sleep until there is work (block on the fd or queue that brings it) or use a coarser tick (milliseconds); batch work per wake-up; for a timerfd, set an interval the work needs"
	return v
}
