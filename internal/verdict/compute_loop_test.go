package verdict

import "testing"

func TestComputeLoop(t *testing.T) {
	// crunching is a thread at c of a core, that part of it in user space,
	// making one write a second.
	crunching := func(c, user float64) *Observation {
		return obs(thread(13, "cruncher", cpu(c*user, c*(1-user)), call("write", 1, "pipe", map[string]float64{"ok": 1})))
	}
	// calling is a cruncher making r reads a second.
	calling := func(r float64) *Observation {
		return obs(thread(13, "cruncher", cpu(90, 9), call("read", r, "file", map[string]float64{"ok": 1})))
	}
	testJudge(t, []judgeCase{
		{name: "compute loop", o: obs(thread(13, "cruncher", cpu(99, 1), call("write", 1, "pipe", map[string]float64{"ok": 1}))), want: ComputeLoop, tid: 13},
		{name: "compute without a syscall profile", o: noSyscalls(obs(thread(13, "cruncher", cpu(99, 1)))), want: Healthy},
		{name: "compute below half a core", o: obs(thread(13, "t", cpu(45, 1))), want: Healthy},
		{name: "compute squeezed by other load", o: obs(demand(thread(13, "cruncher", cpu(30, 0)), 99)), want: ComputeLoop, tid: 13},
		{name: "compute wanting less than half a core", o: obs(demand(thread(13, "t", cpu(30, 0)), 45)), want: Healthy},

		{name: "CPU just below ComputeCPU", o: crunching(0.99*ComputeCPU, 1), want: Healthy},
		{name: "CPU just above ComputeCPU", o: crunching(1.01*ComputeCPU, 1), want: ComputeLoop, tid: 13},
		{name: "demand just below ComputeCPU", o: obs(demand(thread(13, "cruncher", cpu(30, 0)), 0.99*ComputeCPU)), want: Healthy},
		{name: "demand just above ComputeCPU", o: obs(demand(thread(13, "cruncher", cpu(30, 0)), 1.01*ComputeCPU)), want: ComputeLoop, tid: 13},
		{name: "user time just below ComputeUser", o: crunching(99, 0.99*ComputeUser), want: Healthy},
		{name: "user time just above ComputeUser", o: crunching(99, 1.01*ComputeUser), want: ComputeLoop, tid: 13},
		{name: "syscalls just below ComputeMaxRate", o: calling(0.99 * ComputeMaxRate), want: ComputeLoop, tid: 13},
		{name: "syscalls at ComputeMaxRate", o: calling(ComputeMaxRate), want: Healthy},
	})
}
