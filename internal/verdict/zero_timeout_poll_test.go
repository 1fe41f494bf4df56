package verdict

import "testing"

func TestZeroTimeoutPoll(t *testing.T) {
	// empty is a thread whose epoll_wait finds nothing r times a second,
	// that share of its calls: the others are reads that succeed.
	empty := func(r, share float64) *Observation {
		return obs(thread(9, "Poller", cpu(40, 55),
			call("epoll_wait", r, "epoll", map[string]float64{"zero": 1}),
			call("read", others(r, share), "tcp", map[string]float64{"ok": 1})))
	}
	testJudge(t, []judgeCase{
		{name: "zero-timeout poll", o: obs(thread(9, "Poller", cpu(40, 55), call("epoll_wait", 600000, "epoll", map[string]float64{"zero": 1}))),
			want: ZeroTimeoutPoll, tid: 9, syscall: "epoll_wait", fd: "3 (epoll)"},
		{name: "poll returning events", o: obs(thread(9, "t", cpu(40, 55), call("epoll_wait", 600000, "epoll", map[string]float64{"ok": 1}))), want: Healthy},

		{name: "empty polls just below LoopRate", o: obs(thread(9, "t", cpu(40, 55), call("poll", 0.99*LoopRate, "", map[string]float64{"zero": 1}))), want: Healthy},
		{name: "empty polls just above LoopRate", o: obs(thread(9, "t", cpu(40, 55), call("poll", 1.01*LoopRate, "", map[string]float64{"zero": 1}))),
			want: ZeroTimeoutPoll, tid: 9, syscall: "poll"},
		{name: "empty polls just below LoopShare", o: empty(10000, 0.99*LoopShare), want: Healthy},
		{name: "empty polls just above LoopShare", o: empty(10000, 1.01*LoopShare), want: ZeroTimeoutPoll, tid: 9, syscall: "epoll_wait"},
	})
}
