package verdict

import "testing"

func TestBusyPoll(t *testing.T) {
	// eagain is a thread whose recvfrom fails with EAGAIN r times a
	// second, share of all its calls: the others are sends that succeed.
	eagain := func(r, share float64) *Observation {
		return obs(thread(7, "poller", cpu(40, 50),
			call("recvfrom", r, udp, map[string]float64{"EAGAIN": 1}),
			call("sendto", others(r, share), udp, map[string]float64{"ok": 1})))
	}
	testJudge(t, []judgeCase{
		{name: "busy poll (the seed)", o: obs(thread(7, "NatThreadMain", cpu(40, 59.5), call("recvfrom", 1e6, udp, map[string]float64{"EAGAIN": 1}))),
			want: BusyPoll, tid: 7, syscall: "recvfrom", errno: "EAGAIN", fd: "3 (udp 0.0.0.0:1701)"},
		{name: "busy poll over many sockets (SoftEther's SecureNAT)", o: obs(thread(7, "vpnserver", cpu(30, 45), spreadFDs(call("recvfrom", 870000, "", map[string]float64{"EAGAIN": 1}), 2000))),
			want: BusyPoll, tid: 7, syscall: "recvfrom", errno: "EAGAIN", fd: "fd 10 (udp 0.0.0.0:40010) 0.1%, fd 11 (udp 0.0.0.0:40011) 0.1%, ...", fdCount: 2000},
		{name: "EAGAIN a quarter of a server's calls", o: obs(thread(7, "nginx", cpu(30, 50),
			call("recvfrom", 40000, "tcp", map[string]float64{"ok": 0.5, "EAGAIN": 0.5}),
			call("writev", 20000, "tcp", map[string]float64{"ok": 1}),
			call("epoll_wait", 20000, "epoll", map[string]float64{"ok": 1}))), want: Healthy},

		{name: "EAGAIN just below LoopRate", o: obs(thread(7, "t", cpu(10, 20), call("recvfrom", 0.99*LoopRate, udp, map[string]float64{"EAGAIN": 1}))), want: Healthy},
		{name: "EAGAIN just above LoopRate", o: obs(thread(7, "t", cpu(10, 20), call("recvfrom", 1.01*LoopRate, udp, map[string]float64{"EAGAIN": 1}))),
			want: BusyPoll, tid: 7, syscall: "recvfrom", errno: "EAGAIN"},
		{name: "EAGAIN just below LoopShare", o: eagain(10000, 0.99*LoopShare), want: Healthy},
		{name: "EAGAIN just above LoopShare", o: eagain(10000, 1.01*LoopShare), want: BusyPoll, tid: 7, syscall: "recvfrom", errno: "EAGAIN"},
	})
}
