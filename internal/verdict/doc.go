// Package verdict turns what cpuwhy observed of one process over a window
// into verdicts: the pattern of the CPU burn in plain words, the numbers
// behind it, and what usually fixes it.
//
// The input, an Observation, is plain data (thread CPU, each thread's
// syscalls with their results and fds, its hottest stacks and
// instructions), so the rules are pure functions tested on hand-written
// observations on both sides of every threshold, apart from the
// collection, which package diagnose does for real.
//
// Patterns are a fixed vocabulary (the Pattern constants): other tooling
// reads them. Each has a file of its own (busy_poll.go, error_loop.go, ...,
// healthy.go) holding its rule, and at its top the thresholds that decide
// between a bug and a busy process doing real work: rates and ratios, each
// with the reason for its value. The thresholds several rules share
// (HotThreadCPU, LoopRate, LoopShare) are in rules.go, beside the one
// ordered table of rules that Judge tries, each judged per process or per
// thread. A busy server doing real work must not be called a bug, so
// every bug pattern asks for a fruitless repetition (a call that finds
// nothing, fails, or sleeps for nothing) at a rate no useful work needs,
// or for CPU in a place that is waste by construction (a garbage
// collector, a spin), and a share of the thread's calls or time that
// leaves no room for real work.
//
// Some causes are outside the target's code: a CPU limit on its cgroup
// (throttled), other tasks on its CPUs (starved), the hypervisor (steal),
// interrupts (softirq). Their rules, of the scope outside, judge every
// process whatever its CPU, from what the Observation holds of the host
// (host.go) and of the target's cgroups, and their verdicts follow those
// on the code. Threads named alike doing the same work are judged as one
// (groups.go).
package verdict
