package verdict

import "testing"

func TestErrorLoop(t *testing.T) {
	// refused is a UDP client whose recvfrom fails with ECONNREFUSED r
	// times a second, that share of its calls, beside the sends that
	// provoke it and a poll before each receive that was never timed:
	// how long it waits is not known, so only the share can tell.
	refused := func(r, share float64) *Observation {
		return obs(thread(8, "UdpClient", cpu(30, 60),
			call("sendto", others(r, share)-r, "udp", map[string]float64{"ok": 1}),
			call("poll", r, "", map[string]float64{"ok": 1}),
			call("recvfrom", r, "udp", map[string]float64{"ECONNREFUSED": 1})))
	}
	// failing is the same client when only that part of its receives fail.
	failing := func(part float64) *Observation {
		return obs(thread(8, "UdpClient", cpu(30, 60),
			call("sendto", 200000, "udp", map[string]float64{"ok": 1}),
			call("recvfrom", 200000, "udp", map[string]float64{"ECONNREFUSED": part, "ok": 1 - part})))
	}
	// retrying is socat retrying a closed port without a backoff: each
	// round makes thirteen calls, one of them the refused connect, r
	// rounds a second, and sleeps (nanosleep(0)) sleepNs; a sleep of 0 ns
	// is an untimed one.
	// retryReads is the same round with reads recvfroms until EAGAIN.
	retryReads := func(r float64, sleepNs uint64, reads float64) *Observation {
		sleep := call("clock_nanosleep", r, "", map[string]float64{"ok": 1})
		if sleepNs > 0 {
			sleep = timed(sleep, sleepNs, 50)
		}
		return obs(thread(9, "socat", cpu(5, 37),
			sleep,
			call("socket", r, "", map[string]float64{"ok": 1}),
			call("fcntl", r, "tcp", map[string]float64{"ok": 1}),
			call("connect", r, "tcp", map[string]float64{"ECONNREFUSED": 1}),
			call("getsockname", r, "tcp", map[string]float64{"ok": 1}),
			call("recvmsg", r, "tcp", map[string]float64{"EAGAIN": 1}),
			call("recvfrom", reads*r, "unix socket", map[string]float64{"EAGAIN": 1}),
			call("close", r, "tcp", map[string]float64{"ok": 1})))
	}
	retrying := func(r float64, sleepNs uint64) *Observation { return retryReads(r, sleepNs, 6) }
	testJudge(t, []judgeCase{
		// Judged by rounds: the refused connect is one call in thirteen,
		// far below half of LoopShare, and the round does not wait.
		{name: "retry loop (socat)", o: retrying(6700, 87000), want: ErrorLoop, tid: 9, syscall: "connect", errno: "ECONNREFUSED", fd: "3 (tcp)"},
		// With more reads a round than all its other calls, the EAGAINs
		// pass busy_poll's share; the refused connect, which starts each
		// round, is still the loop's cause: error_loop comes first.
		{name: "retry loop reading until EAGAIN, most of its calls", o: retryReads(6700, 87000, 9), want: ErrorLoop, tid: 9, syscall: "connect", errno: "ECONNREFUSED"},
		{name: "retry loop of untimed sleeps", o: retrying(6700, 0), want: Healthy},
		{name: "retry loop just below LoopRate", o: retrying(0.99*LoopRate, 87000), want: Healthy},
		{name: "retry loop just above LoopRate", o: retrying(1.01*LoopRate, 87000), want: ErrorLoop, tid: 9, syscall: "connect", errno: "ECONNREFUSED"},
		{name: "retries waiting just below RetryWait", o: retrying(1200, 0.99*RetryWait), want: ErrorLoop, tid: 9, syscall: "connect", errno: "ECONNREFUSED"},
		{name: "retries waiting just above RetryWait", o: retrying(1200, 1.01*RetryWait), want: Healthy},

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
