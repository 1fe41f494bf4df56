package verdict

import "time"

// The thresholds of every rule, in one place. Each is a rate per second of
// one thread or a ratio, never an absolute count, so that the window's
// length does not change a verdict. Tests probe both sides of each.
const (
	// BusyCPU is the process CPU (itself plus waited-for children, in
	// percent of one core) below which nothing is wrong enough to judge:
	// a tenth of a core is what a busy daemon's housekeeping costs.
	BusyCPU = 10.0

	// HotThreadCPU is the CPU of a thread below which its own patterns
	// are not looked for: a pattern costing less than a fifth of a core
	// is not why a machine is pinned. A thread's CPU here is its demand
	// when known (Thread.Demand): on a loaded machine a loop gets less
	// than it wants.
	HotThreadCPU = 20.0

	// LoopRate is the rate of fruitless calls of one thread (EAGAIN, one
	// errno, a poll that found nothing, a yield) at which they are a
	// loop rather than retries: a thread that retries after waiting does
	// so at most about a thousand times a second (a 1 ms wait), while a
	// loop without a wait reaches hundreds of thousands.
	LoopRate = 1000.0

	// LoopShare is the part of the thread's calls the fruitless calls
	// must be. A server reading sockets until EAGAIN gets one EAGAIN per
	// burst of useful calls and a wait (nginx: about one call in four); a
	// busy loop does little else.
	LoopShare = 0.5

	// ErrorShare is the part of a syscall's calls that must fail with the
	// same errno for an error loop: one failure in ten is a client going
	// away, nine in ten is a loop that never looks at the error.
	ErrorShare = 0.9

	// TimerRate is the rate of sleeps or timer expirations of one thread
	// above which the sleeps are shorter than a millisecond on average:
	// waking that often costs more CPU than the work between wake-ups.
	TimerRate = 1000.0

	// WriteRate is the rate of writes to one fd above which they are a
	// flood, when they also make up WriteShare of the thread's calls (a
	// thread that only writes). A server replying on one socket reads as
	// often as it writes, which keeps it below the share.
	WriteRate  = 10000.0
	WriteShare = 0.8

	// LockRate is the rate of futex calls, all threads of the process
	// together, above which threads spend their time handing a lock over
	// rather than working: an uncontended mutex makes no futex call at
	// all, and a healthy pool of workers waking for jobs makes hundreds.
	// LockShare is the part of the calls of the threads involved that
	// the futex calls must be.
	LockRate  = 10000.0
	LockShare = 0.5

	// ChurnRate is the rate of new processes (fork, vfork, clone
	// without CLONE_THREAD is not told apart from a thread's clone, so
	// execve and waited children count) above which starting processes
	// is the work: a shell script's loop, a health check per request.
	ChurnRate = 20.0
	// ChurnChildrenCPU is the CPU of waited-for children (percent of one
	// core) that also makes churn a verdict at any rate.
	ChurnChildrenCPU = 20.0

	// GCShare is the part of the process's samples in its garbage
	// collector (Go) or of its CPU in GC threads (JVM) above which
	// collection is the problem: a healthy Go service spends about 25%
	// of its CPU in the collector by design (GOGC's target), so more than
	// 40% is pressure.
	GCShare = 0.4

	// KernelShare is the part of a thread's CPU in the kernel above which
	// the kernel's work is the cost, when one syscall also holds
	// KernelCallShare of its syscall time and lasts KernelCallMean on
	// average: big copies, page faults of huge reads, not many small calls.
	// That syscall is never one made to wait (epoll_wait, futex, sleeps),
	// whose long calls are spent off CPU, and its share is of all the
	// thread's syscall time, waits included: a server's thread that waits
	// for its clients longer than it sends (a busy nginx worker: 70% of
	// its CPU in the kernel, epoll_wait 300µs a call and most of its
	// syscall time) is not bound by the kernel's work. Nor is that
	// syscall a zero-copy one (sendfile, splice): a file server saturated
	// by sendfile has the kernel do its real work the cheapest way there
	// is.
	KernelShare     = 0.7
	KernelCallShare = 0.5
	KernelCallMean  = 50 * time.Microsecond
	// KernelCPU is what the thread must want of a core (its demand, or
	// its CPU) for the kernel to be what binds it: more than half. A
	// server thread that sleeps in epoll_wait half the time is paced by
	// its clients, however much of its syscall time one call takes (a
	// worker serving 1 MiB files by sendfile to a fast client: 59% of its
	// syscall time in sendfile, 111 µs a call, at 32% of a core, measured).
	KernelCPU = 50.0

	// ComputeCPU is the CPU of a thread in user code, with fewer than
	// ComputeMaxRate syscalls a second, at which it is a compute loop
	// worth naming: more than half a core on one function.
	ComputeCPU     = 50.0
	ComputeUser    = 0.8
	ComputeMaxRate = 1000.0

	// SpinShare is the part of a hot function's samples in a loop that
	// holds a spin-wait hint (x86 PAUSE, arm64 YIELD), or on or just after
	// such a hint where no loop was found, above which the function is a
	// spin lock or a spin wait.
	SpinShare = 0.2
)
