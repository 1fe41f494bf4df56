package verdict

import "testing"

func TestTimerStorm(t *testing.T) {
	// sleeping is a thread sleeping r times a second, that share of its
	// calls: the others are reads that succeed.
	sleeping := func(r, share float64) *Observation {
		return obs(thread(14, "Ticker", cpu(20, 40),
			call("clock_nanosleep", r, "", map[string]float64{"zero": 1}),
			call("read", others(r, share), "pipe", map[string]float64{"ok": 1})))
	}
	ticking := func(r float64) *Observation {
		return obs(thread(14, "Ticker", cpu(20, 40), call("read", r, "anon_inode:[timerfd]", map[string]float64{"ok": 1})))
	}
	testJudge(t, []judgeCase{
		{name: "nanosleep storm", o: obs(thread(14, "Ticker", cpu(20, 40), call("clock_nanosleep", 50000, "", map[string]float64{"zero": 1}))),
			want: TimerStorm, tid: 14, syscall: "clock_nanosleep"},
		{name: "timerfd storm", o: ticking(90000), want: TimerStorm, tid: 14, syscall: "read", fd: "3 (anon_inode:[timerfd])"},

		{name: "sleeps just below TimerRate (a millisecond each)", o: obs(thread(14, "t", cpu(20, 40), call("nanosleep", 0.99*TimerRate, "", map[string]float64{"zero": 1}))), want: Healthy},
		{name: "sleeps just above TimerRate", o: obs(thread(14, "t", cpu(20, 40), call("nanosleep", 1.01*TimerRate, "", map[string]float64{"zero": 1}))),
			want: TimerStorm, tid: 14, syscall: "nanosleep"},
		{name: "timerfd ticks just below TimerRate", o: ticking(0.99 * TimerRate), want: Healthy},
		{name: "timerfd ticks just above TimerRate", o: ticking(1.01 * TimerRate), want: TimerStorm, tid: 14, syscall: "read"},
		{name: "sleeps just below LoopShare", o: sleeping(5000, 0.99*LoopShare), want: Healthy},
		{name: "sleeps just above LoopShare", o: sleeping(5000, 1.01*LoopShare), want: TimerStorm, tid: 14, syscall: "clock_nanosleep"},
	})
}
