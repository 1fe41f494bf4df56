package verdict

import (
	"strings"
	"testing"
)

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

// A busy healthy verdict says what its numbers are: the most repeated
// fruitless call, with the rate the thread table shows, and why no loop
// rule held; nothing of syscalls when none were observed; and the CPU
// of the process it is about, with the hottest thread's apart.
func TestHealthyEvidence(t *testing.T) {
	evidence := func(o *Observation) string {
		t.Helper()
		vs := Judge(o)
		if len(vs) != 1 || vs[0].Pattern != Healthy {
			t.Fatalf("verdicts %+v, want one healthy", vs)
		}
		return strings.Join(vs[0].Evidence, "\n")
	}
	// A server reading until EAGAIN, a quarter of its calls.
	server := obs(thread(21, "postgres", cpu(60, 40),
		call("recvfrom", 37000, "tcp", map[string]float64{"EAGAIN": 1}),
		call("sendto", 37000, "tcp", map[string]float64{"ok": 1}),
		call("epoll_wait", 74000, "", map[string]float64{"ok": 1})))
	if e := evidence(server); !strings.Contains(e, "repeated recvfrom EAGAIN at 37k/s: 25% of its calls, 100% of its recvfrom calls (busy_poll asks 50%") {
		t.Errorf("evidence does not name the EAGAIN beside it:\n%s", e)
	}
	calm := obs(thread(21, "worker", cpu(60, 40), call("read", 900, "file", map[string]float64{"EAGAIN": 1})))
	if e := evidence(calm); !strings.Contains(e, "no thread repeated a fruitless call") {
		t.Errorf("evidence:\n%s", e)
	}
	cold := obs(thread(1, "main", cpu(30, 30)), thread(2, "poller", cpu(5, 5), call("read", 5000, "pipe", map[string]float64{"EAGAIN": 1})))
	if e := evidence(cold); !strings.Contains(e, "thread poller (TID 2) repeated read EAGAIN at 5.0k/s (100% of its calls), but used 10.0% of a core") {
		t.Errorf("evidence:\n%s", e)
	}
	if e := evidence(noSyscalls(obs(thread(1, "t", cpu(30, 10))))); strings.Contains(e, "syscall") || strings.Contains(e, "fruitless") {
		t.Errorf("evidence speaks of syscalls it did not see:\n%s", e)
	}

	o := obs(thread(1, "a", cpu(10, 3)), thread(2, "b", cpu(10, 2)), thread(3, "c", cpu(10, 2)))
	o.Children = 5
	v := Judge(o)[0]
	if v.CPU != 42 || v.CPUOf != CPUOfProcess || v.ThreadCPU != 13 || v.Thread.TID != 1 {
		t.Errorf("cpu %v of %q, thread %d at %v; want 42 of the process, thread 1 at 13", v.CPU, v.CPUOf, v.Thread.TID, v.ThreadCPU)
	}
	idle := obs(thread(1, "a", cpu(1, 1)))
	idle.Children = 3
	if v := Judge(idle)[0]; v.CPU != 5 || v.CPUOf != CPUOfProcess || !strings.Contains(v.Summary, "5.0% of a core") {
		t.Errorf("idle: cpu %v of %q, %q; want 5 of the process", v.CPU, v.CPUOf, v.Summary)
	}
}

// The CPU line splits the window in three parts that add up.
func TestCPULineDemand(t *testing.T) {
	th := demand(thread(4, "w", cpu(15, 6)), 33)
	want := "of the window it ran 21%, waited for a CPU 12% and slept or blocked 67%"
	if got := cpuLine(&th); !strings.Contains(got, want) {
		t.Errorf("%q, want it to say %q", got, want)
	}
}
