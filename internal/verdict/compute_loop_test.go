package verdict

import (
	"fmt"
	"strings"
	"testing"
)

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

// flat is a cruncher whose samples end in the named hottest function
// that share of the time, the rest spread over functions of 2% each.
func flat(share float64) *Observation {
	th := thread(13, "python3", cpu(99, 1), call("write", 1, "pipe", map[string]float64{"ok": 1}))
	th.Samples = 1000
	hot := int(share * 1000)
	th.Stacks = []Stack{{Frames: []string{"__kernel_sinl", "sinl", "main"}, Count: hot}}
	for i := 0; hot < 1000; i++ {
		n := min(20, 1000-hot)
		th.Stacks = append(th.Stacks, Stack{Frames: []string{fmt.Sprintf("fn%02d", i), "main"}, Count: n})
		hot += n
	}
	th.Code = code("__kernel_sinl", Instruction{Addr: 0x10, Text: "fmul", Samples: 2})
	return obs(th)
}

// A function is named as the loop only when it holds
// ComputeFunctionShare of the samples; below, the profile is flat.
func TestComputeLoopNamesAFunction(t *testing.T) {
	for _, tt := range []struct {
		name  string
		o     *Observation
		named bool
	}{
		{"just below ComputeFunctionShare", flat(0.99 * ComputeFunctionShare), false},
		{"just above ComputeFunctionShare", flat(1.01 * ComputeFunctionShare), true},
		{"a flat profile (__kernel_sinl at 5.7%)", flat(0.057), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := Judge(tt.o)[0]
			if v.Pattern != ComputeLoop {
				t.Fatalf("pattern %s", v.Pattern)
			}
			ev := strings.Join(v.Evidence, "\n")
			named := strings.Contains(v.Summary, "in __kernel_sinl") && v.Code != nil && strings.Contains(ev, "hottest instruction")
			if named != tt.named {
				t.Errorf("named %v, want %v: %s\n%s", named, tt.named, v.Summary, ev)
			}
			if !tt.named && (!strings.Contains(ev, "a flat profile: no function holds 20% of its samples; the top ones __kernel_sinl") ||
				strings.Contains(v.Advice, "the loop in")) {
				t.Errorf("flat profile not said: %s\n%s\n%s", v.Summary, ev, v.Advice)
			}
		})
	}
	th := thread(13, "cruncher", cpu(99, 1), call("write", 1, "pipe", map[string]float64{"ok": 1}))
	th.Stacks, th.Samples = nil, 0
	if v := Judge(obs(th))[0]; v.Pattern != ComputeLoop || !strings.Contains(v.Summary, "no stack of it was sampled") {
		t.Errorf("unsampled: %s: %s", v.Pattern, v.Summary)
	}
}
