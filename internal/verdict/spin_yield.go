package verdict

import (
	"fmt"
	"strings"
)

// spin_yield: a thread waiting for something (a flag, a lock, a queue)
// by spinning instead of sleeping. It has two forms, with a rule each, at
// two places in the registry (rules.go):
//
//   - a sched_yield loop: sched_yield at LoopRate or more, and LoopShare
//     or more of all the thread's calls (both in rules.go);
//   - a user-space spin: the thread's hot function spends SpinShare or
//     more of its samples in spin-wait code, the thread's CPU is
//     ComputeUser or more in user space (compute_loop.go: a spin is a
//     compute loop that waits), and its syscalls were observed.

// SpinShare is the part of a hot function's samples in a loop that
// holds a spin-wait hint (x86 PAUSE, arm64 YIELD), or on or just after
// such a hint where no loop was found, above which the function is a
// spin lock or a spin wait.
const SpinShare = 0.2

func yieldLoop(o *Observation, t *Thread) *Verdict {
	s := t.syscall("sched_yield")
	if s == nil {
		return nil
	}
	n := float64(s.Count)
	if n/o.Seconds < LoopRate || n/float64(t.calls()) < LoopShare {
		return nil
	}
	v := newVerdict(SpinYield, t)
	v.Syscall = str(s.Name)
	v.atSyscall(t, s.Name)
	v.Summary = fmt.Sprintf("thread %s spins on sched_yield waiting for something (a flag, a lock, a queue): each yield returns at once when the CPU has nothing else to run", t.Name)
	v.Evidence = append([]string{cpuLine(t),
		fmt.Sprintf("sched_yield called %s (%.1f%% of the thread's calls)", rate(n/o.Seconds), pct(n, float64(t.calls())))}, stackLine(t)...)
	v.Advice = "block instead of yielding: wait on a condition variable, a futex, an eventfd or a blocking queue that the producer signals"
	return v
}

// spinHint reports whether an instruction is a spin-wait hint.
func spinHint(text string) bool {
	op, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(text)), " ")
	return op == "pause" || op == "yield"
}

func userSpin(o *Observation, t *Thread) *Verdict {
	c := t.Code
	if o.NoSyscalls || c == nil || c.Samples == 0 || t.CPU.Total <= 0 || t.CPU.User/t.CPU.Total < ComputeUser {
		return nil
	}
	n, where := spinSamples(c)
	if float64(n)/float64(c.Samples) < SpinShare {
		return nil
	}
	v := newVerdict(SpinYield, t)
	v.Code = c
	v.Summary = fmt.Sprintf("thread %s spins in user space in %s, waiting for a lock or a flag with a spin-wait (pause) loop instead of sleeping", t.Name, c.Function)
	v.Evidence = append([]string{cpuLine(t),
		fmt.Sprintf("%.0f%% of the samples in %s are %s", pct(float64(n), float64(c.Samples)), c.Function, where),
		fmt.Sprintf("%s syscalls: it never blocks", rate(float64(t.calls())/o.Seconds))}, stackLine(t)...)
	v.Advice = "bound the spin and then block (futex, pthread mutex or condition variable, which spin briefly and then sleep); never spin on a single core machine"
	return v
}

// spinSamples counts the samples of c in spin-wait code, and says where
// they are. A spin is told by the code's structure: the loop around the
// hottest instruction holds a spin-wait hint, wherever in the loop the
// samples land (a timer sample, on a machine without hardware counters,
// lands after the PAUSE, never on it; a slow load spreads them). Without
// a loop, the samples on a hint or just after one.
func spinSamples(c *Code) (int, string) {
	var n int
	if l := c.Loop; l != nil {
		hint := false
		for _, in := range c.Instructions {
			if in.Addr >= l.Start && in.Addr < l.End {
				n += in.Samples
				hint = hint || spinHint(in.Text)
			}
		}
		if hint {
			return n, fmt.Sprintf("in a %d-byte loop at %#x that holds a spin-wait (pause) instruction", l.End-l.Start, l.Start)
		}
	}
	n = 0
	for i, in := range c.Instructions {
		if spinHint(in.Text) || i > 0 && spinHint(c.Instructions[i-1].Text) {
			n += in.Samples
		}
	}
	return n, "on its spin-wait instruction or just after it"
}
