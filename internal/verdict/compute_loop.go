package verdict

import (
	"fmt"
	"slices"
)

// compute_loop: a thread on CPU in its own code with hardly a syscall: a
// loop that does not end, or does more work than it should.
//
// Thresholds: the thread wants ComputeCPU or more of a core (its demand,
// or its CPU), ComputeUser or more of its CPU is in user space, it makes
// fewer than ComputeMaxRate syscalls a second, and its syscalls were
// observed (without them, few is not known).

const (
	// ComputeCPU is what the thread must want of a core to be a compute
	// loop worth naming: more than half a core on one function. Below,
	// the thread leaves its core idle half the time: it waits for
	// something, which is what paces it.
	ComputeCPU = 50.0

	// ComputeUser is the part of the thread's CPU that must be in user
	// space: a loop in its own code still pays the kernel for timer
	// interrupts and page faults, a few percent; more than a fifth in the
	// kernel is the kernel's work, which kernel_bound judges.
	ComputeUser = 0.8

	// ComputeMaxRate is the rate of syscalls a thread must stay below for
	// its CPU to be its own code's: the same bar as LoopRate, one call a
	// millisecond. A thread doing real I/O or waiting on it makes more.
	ComputeMaxRate = 1000.0
)

func computeLoop(o *Observation, t *Thread) *Verdict {
	r := float64(t.calls()) / o.Seconds
	if o.NoSyscalls || t.load() < ComputeCPU || t.CPU.Total <= 0 || t.CPU.User/t.CPU.Total < ComputeUser || r >= ComputeMaxRate {
		return nil
	}
	v := newVerdict(ComputeLoop, t)
	fn := "its code"
	if t.Code != nil {
		fn, v.Code = t.Code.Function, t.Code
	} else if len(v.Stack) > 0 {
		fn = v.Stack[0]
	}
	v.Summary = fmt.Sprintf("thread %s computes in user space, in %s, with hardly a syscall: a loop that does not end or does more work than it should", t.Name, fn)
	v.Evidence = append([]string{cpuLine(t), fmt.Sprintf("%s syscalls", rate(r))}, stackLine(t)...)
	if c := t.Code; c != nil && len(c.Instructions) > 0 && t.Samples > 0 {
		hot := slices.MaxFunc(c.Instructions, func(a, b Instruction) int { return a.Samples - b.Samples })
		v.Evidence = append(v.Evidence, fmt.Sprintf("%.0f%% of its samples in %s; hottest instruction %#x %s (%d samples)",
			pct(float64(c.Samples), float64(t.Samples)), c.Function, hot.Addr, hot.Text, hot.Samples))
	}
	v.Advice = "look at the loop in " + fn + ": its exit condition and the work per iteration (the hottest instructions show where); if the work is legitimate, it needs a better algorithm or more cores"
	return v
}
