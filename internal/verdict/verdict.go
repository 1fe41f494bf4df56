package verdict

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Pattern names what a process's CPU goes to. Other tooling reads these
// strings: add patterns, never rename one.
type Pattern string

// The patterns.
const (
	BusyPoll        Pattern = "busy_poll"         // a non-blocking fd polled in a loop: EAGAIN storm
	ErrorLoop       Pattern = "error_loop"        // the same call failing with the same errno in a loop
	ZeroTimeoutPoll Pattern = "zero_timeout_poll" // poll/select/epoll_wait finding nothing, in a loop
	SpinYield       Pattern = "spin_yield"        // sched_yield or a user-space spin on a lock
	LockContention  Pattern = "lock_contention"   // futex wait/wake storm among threads
	ComputeLoop     Pattern = "compute_loop"      // on CPU in user code with few syscalls
	TimerStorm      Pattern = "timer_storm"       // tiny sleeps or timer ticks
	WriteStorm      Pattern = "write_storm"       // a flood of writes to one fd
	ProcessChurn    Pattern = "process_churn"     // short-lived children started in a loop
	GCPressure      Pattern = "gc_pressure"       // the garbage collector takes the CPU
	KernelBound     Pattern = "kernel_bound"      // CPU in the kernel, in one syscall
	Healthy         Pattern = "healthy"           // nothing wrong
)

// Patterns lists every pattern, for documentation and completion.
var Patterns = []Pattern{BusyPoll, ErrorLoop, ZeroTimeoutPoll, SpinYield, LockContention, ComputeLoop,
	TimerStorm, WriteStorm, ProcessChurn, GCPressure, KernelBound, Healthy}

// ThreadRef names a thread.
type ThreadRef struct {
	TID  int    `json:"tid"`
	Name string `json:"name"`
}

// Verdict is one finding. Its JSON form is read by other tooling: fields
// may be added, never renamed. Syscall, Errno and FD are null when the
// pattern has none.
type Verdict struct {
	Pattern Pattern   `json:"pattern"`
	Thread  ThreadRef `json:"thread"`
	CPU     float64   `json:"cpu"` // of the thread (or threads) concerned, percent of one core
	Syscall *string   `json:"syscall"`
	Errno   *string   `json:"errno"`
	FD      *string   `json:"fd"`
	// FDCount is how many fds the syscall went round when no one took
	// most of its calls (SoftEther reading 2000 UDP sockets in turn); FD
	// then lists the busiest few.
	FDCount int `json:"fd_count,omitempty"`
	// Stack is the hottest user stack of the thread, innermost frame
	// first, function names only (module+offset where nothing names one).
	Stack    []string `json:"stack"`
	Summary  string   `json:"summary"`
	Evidence []string `json:"evidence"`
	Advice   string   `json:"advice"`
	// Code is the hot function's hottest instructions (compute_loop,
	// spin_yield), when sampled.
	Code *Code `json:"code,omitempty"`
}

// Judge returns the verdicts on o, most CPU first. There is always at
// least one: Healthy when nothing else holds.
func Judge(o *Observation) []Verdict {
	if o.CPU.Total+o.Children < BusyCPU {
		return []Verdict{idle(o)}
	}
	var out []Verdict
	covered := map[int]bool{}
	for _, rule := range []func(*Observation) (*Verdict, []int){gcPressure, processChurn, lockContention} {
		v, tids := rule(o)
		if v == nil {
			continue
		}
		out = append(out, *v)
		for _, tid := range tids {
			covered[tid] = true
		}
	}
	for i := range o.Threads {
		t := &o.Threads[i]
		if covered[t.TID] || t.load() < HotThreadCPU {
			continue
		}
		for _, rule := range threadRules {
			if v := rule(o, t); v != nil {
				out = append(out, *v)
				break
			}
		}
	}
	if len(out) == 0 {
		out = append(out, busyHealthy(o))
	}
	slices.SortStableFunc(out, func(a, b Verdict) int { return cmp.Compare(b.CPU, a.CPU) })
	return out
}

// threadRules are tried in order on each hot thread; the first that
// holds is its verdict. Patterns with a fruitless syscall come first: they
// are the most specific evidence.
var threadRules = []func(*Observation, *Thread) *Verdict{
	busyPoll, errorLoop, zeroTimeoutPoll, yieldLoop, timerStorm, writeStorm, kernelBound, userSpin, computeLoop,
}

// newVerdict fills what every verdict on thread t says.
func newVerdict(p Pattern, t *Thread) *Verdict {
	v := &Verdict{Pattern: p, Thread: ThreadRef{TID: t.TID, Name: t.Name}, CPU: round1(t.CPU.Total)}
	if len(t.Stacks) > 0 {
		v.Stack = t.Stacks[0].Frames
	}
	return v
}

// atSyscall makes v's stack the hottest one of t that ends in the libc
// wrapper of the named syscall, when one does: a thread alternating two
// calls (send, then the receive that fails) should show the failing
// one's path. Wrappers are named after their syscall, or the syscall after
// them (recv is the wrapper of recvfrom), give or take a __libc_ prefix.
func (v *Verdict) atSyscall(t *Thread, name string) {
	for _, s := range t.Stacks {
		if len(s.Frames) == 0 {
			continue
		}
		leaf := strings.TrimPrefix(strings.TrimPrefix(s.Frames[0], "__libc_"), "__")
		if leaf != "" && (strings.HasPrefix(name, leaf) || strings.HasPrefix(leaf, name)) {
			v.Stack = s.Frames
			return
		}
	}
}

func str(s string) *string { return &s }

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }

// Rate formats a rate per second as reports print it: 950/s, 12.3k/s,
// 1.05M/s.
func Rate(r float64) string { return rate(r) }

func rate(r float64) string {
	switch {
	case r >= 1e6:
		return fmt.Sprintf("%.2fM/s", r/1e6)
	case r >= 1e4:
		return fmt.Sprintf("%.0fk/s", r/1e3)
	case r >= 1e3:
		return fmt.Sprintf("%.1fk/s", r/1e3)
	}
	return fmt.Sprintf("%.0f/s", r)
}

func pct(part, whole float64) float64 {
	if whole <= 0 {
		return 0
	}
	return 100 * part / whole
}

// cpuLine is the evidence line of a thread's CPU.
func cpuLine(t *Thread) string {
	s := fmt.Sprintf("thread %s (TID %d) used %.1f%% of a core: %.1f%% user, %.1f%% system",
		t.Name, t.TID, t.CPU.Total, t.CPU.User, t.CPU.System)
	if t.Demand >= t.CPU.Total+10 {
		s += fmt.Sprintf("; it was runnable %.0f%% of the time, waiting for a CPU the rest", t.Demand)
	}
	return s
}

// stackLine is the evidence line of the hottest stack, when sampled.
func stackLine(t *Thread) []string {
	if len(t.Stacks) == 0 || t.Samples == 0 {
		return nil
	}
	s := t.Stacks[0]
	frames := s.Frames
	if len(frames) > 6 {
		frames = frames[:6]
	}
	return []string{fmt.Sprintf("%.0f%% of its samples in %s", pct(float64(s.Count), float64(t.Samples)), strings.Join(frames, " <- "))}
}
