package verdict

import "testing"

func TestErrorLoop(t *testing.T) {
	// refused is a UDP client whose recvfrom fails with ECONNREFUSED r
	// times a second, that share of its calls, beside the sends that
	// provoke it.
	refused := func(r, share float64) *Observation {
		return obs(thread(8, "UdpClient", cpu(30, 60),
			call("sendto", others(r, share), "udp", map[string]float64{"ok": 1}),
			call("recvfrom", r, "udp", map[string]float64{"ECONNREFUSED": 1})))
	}
	// failing is the same client when only that part of its receives fail.
	failing := func(part float64) *Observation {
		return obs(thread(8, "UdpClient", cpu(30, 60),
			call("sendto", 200000, "udp", map[string]float64{"ok": 1}),
			call("recvfrom", 200000, "udp", map[string]float64{"ECONNREFUSED": part, "ok": 1 - part})))
	}
	testJudge(t, []judgeCase{
		{name: "error loop (refused)", o: obs(thread(8, "UdpClient", cpu(30, 60),
			call("sendto", 200000, "udp", map[string]float64{"ok": 1}),
			call("recvfrom", 200000, "udp", map[string]float64{"ECONNREFUSED": 1}))),
			want: ErrorLoop, tid: 8, syscall: "recvfrom", errno: "ECONNREFUSED", fd: "3 (udp)"},
		{name: "errors below the share of a syscall", o: failing(0.85), want: Healthy},

		{name: "errors just below LoopRate", o: obs(thread(8, "t", cpu(30, 60),
			call("recvfrom", 0.99*LoopRate, "udp", map[string]float64{"ECONNREFUSED": 1}))), want: Healthy},
		{name: "errors just above LoopRate", o: obs(thread(8, "t", cpu(30, 60),
			call("recvfrom", 1.01*LoopRate, "udp", map[string]float64{"ECONNREFUSED": 1}))), want: ErrorLoop, tid: 8, syscall: "recvfrom", errno: "ECONNREFUSED"},
		{name: "errors just below ErrorShare of the syscall's calls", o: failing(0.99 * ErrorShare), want: Healthy},
		{name: "errors just above ErrorShare of the syscall's calls", o: failing(1.01 * ErrorShare), want: ErrorLoop, tid: 8, errno: "ECONNREFUSED"},
		// The failing call may alternate with the one that provokes it:
		// half of LoopShare of the thread's calls is enough.
		{name: "errors just below half of LoopShare", o: refused(10000, 0.99*LoopShare/2), want: Healthy},
		{name: "errors just above half of LoopShare", o: refused(10000, 1.01*LoopShare/2), want: ErrorLoop, tid: 8, syscall: "recvfrom", errno: "ECONNREFUSED"},
	})
}
