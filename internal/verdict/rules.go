package verdict

import (
	"cmp"
	"fmt"
	"slices"
)

// The thresholds the registry itself applies, and those several rules
// share. Each rule's own thresholds are at the top of its file. Every
// threshold is a rate per second of one thread or a ratio, never an
// absolute count, so that the window's length does not change a verdict;
// tests probe both sides of each, in the test file of each rule that uses
// it.
const (
	// HotThreadCPU is the CPU of a thread below which its own patterns
	// are not looked for: a pattern costing less than a fifth of a core
	// is not why a machine is pinned. A thread's CPU here is its demand
	// when known (Thread.Demand): on a loaded machine a loop gets less
	// than it wants. The process-level rules ask the same of the CPU of
	// all the threads they find (gc_pressure, lock_contention).
	HotThreadCPU = 20.0

	// LoopRate is the rate of fruitless calls of one thread (EAGAIN, one
	// errno, a poll that found nothing, a yield) at which they are a
	// loop rather than retries: a thread that retries after waiting does
	// so at most about a thousand times a second (a 1 ms wait), while a
	// loop without a wait reaches hundreds of thousands. Used by
	// busy_poll, error_loop, zero_timeout_poll and spin_yield.
	LoopRate = 1000.0

	// LoopShare is the part of the thread's calls the fruitless calls
	// must be. A server reading sockets until EAGAIN gets one EAGAIN per
	// burst of useful calls and a wait (nginx: about one call in four); a
	// busy loop does little else. Used by busy_poll, error_loop (half of
	// it), zero_timeout_poll, spin_yield and timer_storm.
	LoopShare = 0.5
)

// scope says what a rule judges.
type scope int

const (
	// perProcess rules judge the whole process once, before any thread
	// is judged on its own; the threads a verdict explains (the
	// collector's, the contenders for a lock) are then not judged again.
	perProcess scope = iota
	// perThread rules judge each hot thread (HotThreadCPU) that no
	// process verdict explains; the first that holds is its verdict.
	perThread
	// otherwise rules judge the whole process when no other rule held:
	// the verdict there always is.
	otherwise
	// outside rules judge the causes outside the process's code (a CPU
	// limit, other tasks, the hypervisor, the kernel), on every process
	// whatever its CPU, beside the verdicts on its code: a process kept
	// below BusyCPU by a limit is slow for it, and a busy poll throttled
	// by one is still a busy poll.
	outside
)

func (s scope) String() string {
	switch s {
	case perProcess:
		return "per process"
	case perThread:
		return "per thread"
	case outside:
		return "outside"
	}
	return "otherwise"
}

// rule is one way of recognizing a pattern. A per-thread rule has thread;
// the others have process, which also returns the TIDs its verdict
// explains.
type rule struct {
	pattern Pattern
	scope   scope
	process func(*Observation) (*Verdict, []int)
	thread  func(*Observation, *Thread) *Verdict
}

// rules is every rule, in the order Judge tries them: the causes outside
// the code, judged on their own; then all the per-process
// rules (their verdicts cover threads), then on each hot thread the
// per-thread rules until one holds, then healthy if none held. Patterns
// with a fruitless syscall come first among the thread rules: they are
// the most specific evidence. error_loop precedes busy_poll: a client
// retrying a failing call reads its socket until EAGAIN in every round
// (socat: six reads a refused connect), so its EAGAINs may be most of its
// calls, but the failing call that starts each round is the cause. lock_contention has two rules: several
// threads of the process contending, judged first; one thread whose
// wakes find nobody (the waiters may be in another process), among the
// fruitless calls. spin_yield has two rules, one per form of
// the pattern: a yield loop is told by its syscalls, before the timer and
// write rules; a user-space spin by its code, after the kernel's work is
// ruled out and just before a compute loop, which it is a special case of.
var rules = []rule{
	{pattern: Throttled, scope: outside, process: throttled},
	{pattern: Starved, scope: outside, process: starved},
	{pattern: Steal, scope: outside, process: steal},
	{pattern: Softirq, scope: outside, process: softirq},
	{pattern: KernelThread, scope: perProcess, process: kernelThread},
	{pattern: GCPressure, scope: perProcess, process: gcPressure},
	{pattern: JITCompilation, scope: perProcess, process: jitCompilation},
	{pattern: ProcessChurn, scope: perProcess, process: processChurn},
	{pattern: ThreadChurn, scope: perProcess, process: threadChurn},
	{pattern: GILContention, scope: perProcess, process: gilContention},
	{pattern: LockContention, scope: perProcess, process: lockContention},
	{pattern: ErrorLoop, scope: perThread, thread: errorLoop},
	{pattern: BusyPoll, scope: perThread, thread: busyPoll},
	{pattern: LockContention, scope: perThread, thread: fruitlessWake},
	{pattern: ZeroTimeoutPoll, scope: perThread, thread: zeroTimeoutPoll},
	{pattern: SpinYield, scope: perThread, thread: yieldLoop},
	{pattern: TimerStorm, scope: perThread, thread: timerStorm},
	{pattern: WriteStorm, scope: perThread, thread: writeStorm},
	{pattern: KernelBound, scope: perThread, thread: kernelBound},
	{pattern: SpinYield, scope: perThread, thread: userSpin},
	{pattern: ComputeLoop, scope: perThread, thread: computeLoop},
	{pattern: Healthy, scope: otherwise, process: healthy},
}

// Judge returns the verdicts on o: those on its code, most CPU first
// (there is always one: Healthy when nothing else holds), then the causes
// outside its code that hold.
func Judge(o *Observation) []Verdict {
	var out []Verdict
	if busy(o) {
		out = judgeBusy(o)
	}
	if len(out) == 0 {
		for _, r := range rules {
			if r.scope != otherwise {
				continue
			}
			if v, _ := r.process(o); v != nil {
				out = append(out, *v)
				break
			}
		}
	}
	if o.Dropped > 0 {
		// The counts are short of what was called: every verdict
		// says so, since any of them may rest on a count.
		for i := range out {
			out[i].Evidence = append(out[i].Evidence, droppedLine(o))
		}
	}
	if sampledCounts(o) {
		// The counts are estimates: every verdict says so, as above.
		for i := range out {
			out[i].Evidence = append(out[i].Evidence, sampledLine(o))
		}
	}
	slices.SortStableFunc(out, func(a, b Verdict) int { return cmp.Compare(b.CPU, a.CPU) })
	// The causes outside the code follow the verdicts on it, in the
	// registry's order: the first verdict is always about the code (or
	// healthy), which scripts read first, and these say why its figures
	// are what they are.
	for _, r := range rules {
		if r.scope == outside {
			if v, _ := r.process(o); v != nil {
				out = append(out, *v)
			}
		}
	}
	return out
}

func sampledCounts(o *Observation) bool { return o.Counting != nil && o.Counting.Sampled }

// sampledLine says what counting in slices of the window affects: the
// rates the rules compare with their thresholds are the slices' (fast
// loops' thresholds are far below the rates sampling starts at), but no
// count is exact.
func sampledLine(o *Observation) string {
	return fmt.Sprintf("syscalls were counted in %d slices, %.1f%% of the window, and scaled: every syscall count and rate is an estimate (a rate while counted, which slows a thread this fast), "+
		"and fds or threads seen only between the slices are missing; --exact counts every call", o.Counting.Slices, 100*o.Counting.Share())
}

// droppedLine says what calls the tracer could not count affect.
func droppedLine(o *Observation) string {
	var counted uint64
	for i := range o.Threads {
		counted += o.Threads[i].calls()
	}
	return fmt.Sprintf("%d calls were not counted (%.1f%% of those counted; the tracer's table of keys was full): every syscall count and rate above is a lower bound, "+
		"a rate under a threshold may be over it, and which thread made the missing calls is unknown", o.Dropped, pct(float64(o.Dropped), float64(counted)))
}

// judgeBusy tries the per-process rules, then the per-thread ones on each
// thread group the former left, judged as one thread, then on each hot
// thread left.
func judgeBusy(o *Observation) []Verdict {
	var out []Verdict
	covered := map[int]bool{}
	for _, r := range rules {
		if r.scope != perProcess {
			continue
		}
		v, tids := r.process(o)
		if v == nil {
			continue
		}
		out = append(out, *v)
		for _, tid := range tids {
			covered[tid] = true
		}
	}
	// Thread groups (groups.go) next: a pool's threads are one verdict.
	for _, g := range Groups(o, covered) {
		if v := judgeGroup(o, g); v != nil {
			out = append(out, *v)
			for _, tid := range g.TIDs {
				covered[tid] = true
			}
		}
	}
	for i := range o.Threads {
		t := &o.Threads[i]
		if covered[t.TID] || t.Exited > 0 || t.load() < HotThreadCPU {
			continue
		}
		for _, r := range rules {
			if r.scope != perThread {
				continue
			}
			if v := r.thread(o, t); v != nil {
				speakInterpreted(v, t)
				out = append(out, *v)
				break
			}
		}
	}
	return out
}

// Outside reports whether p is a cause outside the target's code
// (throttled, starved, ...): judged beside the verdicts on its code, and
// about the process and its host rather than a code path.
func (p Pattern) Outside() bool {
	for _, r := range rules {
		if r.pattern == p && r.scope == outside {
			return true
		}
	}
	return false
}
