package verdict

import "testing"

func TestHealthy(t *testing.T) {
	// A thread that would be a busy poll if the process were busy: it
	// wants all of a core, and gets little of it.
	polling := func(c float64) *Observation {
		return obs(demand(thread(7, "NatThreadMain", cpu(c/2, c/2), call("recvfrom", 1e5, udp, map[string]float64{"EAGAIN": 1})), 99))
	}
	children := func(c float64) *Observation {
		o := obs(thread(1, "sh", cpu(0, 0)))
		o.Children = c
		return o
	}
	testJudge(t, []judgeCase{
		{name: "idle", o: obs(thread(1, "acceptor", cpu(0.1, 0.2))), want: Healthy, tid: 1, summary: "is not burning CPU"},
		{name: "just below busy", o: obs(thread(1, "t", cpu(4.9, 5))), want: Healthy},

		{name: "just below BusyCPU: not judged", o: polling(0.99 * BusyCPU), want: Healthy, tid: 7, summary: "is not burning CPU"},
		{name: "just above BusyCPU: judged", o: polling(1.01 * BusyCPU), want: BusyPoll, tid: 7},
		// Children count towards the process's CPU.
		{name: "children just below BusyCPU", o: children(0.99 * BusyCPU), want: Healthy, summary: "is not burning CPU"},
		{name: "children just above BusyCPU", o: children(1.01 * BusyCPU), want: Healthy, summary: "is busy doing real work"},

		{name: "busy without syscalls", o: noSyscalls(obs(thread(1, "t", cpu(30, 10)))), want: Healthy, summary: "cannot tell a loop from real work"},
	})
}
