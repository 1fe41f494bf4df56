package verdict

import "strings"

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
	ThreadChurn     Pattern = "thread_churn"      // short-lived threads started and ended in a loop
	GCPressure      Pattern = "gc_pressure"       // the garbage collector takes the CPU
	JITCompilation  Pattern = "jit_compilation"   // a JVM's JIT compilers take the CPU
	KernelBound     Pattern = "kernel_bound"      // CPU in the kernel, in one syscall
	Throttled       Pattern = "throttled"         // a cgroup's CPU limit stopped the process
	Starved         Pattern = "starved"           // its threads waited for a CPU other tasks held
	Steal           Pattern = "steal"             // the hypervisor took the CPUs
	Softirq         Pattern = "softirq"           // interrupts and softirqs took the CPUs
	KernelThread    Pattern = "kernel_thread"     // the target is a kernel thread: what it does
	GILContention   Pattern = "gil_contention"    // Python threads taking turns on the interpreter's lock
	Healthy         Pattern = "healthy"           // nothing wrong
)

// Patterns lists every pattern, for documentation and completion.
var Patterns = []Pattern{BusyPoll, ErrorLoop, ZeroTimeoutPoll, SpinYield, LockContention, ComputeLoop,
	TimerStorm, WriteStorm, ProcessChurn, ThreadChurn, GCPressure, JITCompilation, KernelBound, GILContention, Throttled, Starved, Steal, Softirq, KernelThread, Healthy}

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
	// Threads are every thread a verdict on several covers: a thread
	// group (groups.go), busiest first, Thread the busiest; the
	// contenders of lock_contention, hottest first. Absent for a verdict
	// on one thread or the process.
	Threads []ThreadRef `json:"threads,omitempty"`
	// Group is the name the group's threads share, digits as # ("shard-#").
	Group string `json:"group,omitempty"`
	// CPU is the CPU of what the verdict is about, in percent of one
	// core; CPUOf says what that is. ThreadCPU is always the CPU of the
	// thread named in Thread.
	CPU       float64 `json:"cpu"`
	CPUOf     string  `json:"cpu_of"`
	ThreadCPU float64 `json:"thread_cpu"`
	Syscall   *string `json:"syscall"`
	Errno     *string `json:"errno"`
	FD        *string `json:"fd"`
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

// The values of Verdict.CPUOf.
const (
	CPUOfThread    = "thread"    // the thread named in Thread (the patterns judged per thread)
	CPUOfThreads   = "threads"   // the contenders together (lock_contention, gil_contention)
	CPUOfCollector = "collector" // the garbage collector's part of the process (gc_pressure)
	CPUOfCompiler  = "compiler"  // a JVM's JIT compiler threads (jit_compilation)
	CPUOfProcess   = "process"   // the process plus the children it waited for in the window (process_churn, healthy)
	CPUOfExited    = "exited"    // the threads that ended during the window (thread_churn)
	CPUOfGroup     = "group"     // the threads of a group judged as one (Threads)
)

// newVerdict fills what every verdict on thread t says.
func newVerdict(p Pattern, t *Thread) *Verdict {
	v := &Verdict{Pattern: p, Thread: ThreadRef{TID: t.TID, Name: t.Name},
		CPU: round1(t.CPU.Total), CPUOf: CPUOfThread, ThreadCPU: round1(t.CPU.Total)}
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
