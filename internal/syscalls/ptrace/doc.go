// Package ptrace is the syscalls.Tracer for kernels or privileges without
// BPF: it stops the target at every syscall entry and exit, like strace.
//
// Trace seizes every thread of the target (PTRACE_SEIZE, listing
// /proc/PID/task again until no thread is new, and following the threads
// started later with PTRACE_O_TRACECLONE), then resumes each with
// PTRACE_SYSCALL and counts the calls at their exit stops, by thread,
// syscall, errno and, for calls whose first argument is one, fd. Entry and
// exit stops are told apart with PTRACE_GET_SYSCALL_INFO (Linux 5.3),
// before that by toggling a per-thread state, with the registers read by
// PTRACE_GETREGS (amd64) or PTRACE_GETREGSET (arm64, where x7 also says
// the direction). One call in Options.TimeEvery per thread is timed from
// its entry stop to its exit stop, as the tracer sees them.
//
// Safety: the target must come out as it went in. Every ptrace request
// comes from one goroutine locked to its OS thread (a tracee obeys only
// the thread that attached it). Signals are given back to the target at
// signal-delivery-stops; a group-stop (SIGSTOP, SIGTSTP...) is left in
// place with PTRACE_LISTEN. On every way out (end of the window, ctx
// canceled, an error, a panic) every thread is detached: a running thread
// is stopped with PTRACE_INTERRUPT first, and a signal caught on the way
// is handed back with PTRACE_DETACH. PTRACE_O_EXITKILL is never set, so if
// cpuwhy is killed the kernel detaches and the target runs on. The window
// is capped at MaxDuration.
//
// Cost: every syscall costs the target two stops and two round trips to
// the tracer, so a syscall-bound program runs tens to hundreds of times
// slower while traced (busypoll: about 3-4 million recvfrom calls a second
// untraced, about 30 thousand traced on a two-core VM). Counts are exact,
// but they are the counts of a slowed-down program, and durations include
// the stops. The slowdown cannot be measured directly, since nothing
// counts syscalls untraced; Trace measures the target's CPU rate for
// 200 ms before attaching (from /proc/PID/task/*/schedstat) and while
// traced, and sets Profile.Slowdown to the ratio of the two, capped at 1.
// A program doing the same work per loop spends at least as much CPU per
// loop traced as untraced, so that ratio bounds its speed traced relative
// to untraced from above: the real ratio is lower (busypoll: a bound of
// 0.15 for a measured 0.01). Profile.Notes states the traced syscall rate
// and the bound; under minBaselineCPU the bound is not given.
//
// Limits: a target that is cpuwhy's own child (as in tests) is reaped by
// the tracer when it exits during the window, so its parent's wait fails.
// Syscalls of 32-bit (compat) code are numbered by the 64-bit table. A
// thread's name is read when it is first seen, when it renames itself
// (prctl PR_SET_NAME) and at the end of the window. No stacks are
// recorded.
//
// Errors: syscalls.ErrNotSupported when ptrace is not permitted (no
// CAP_SYS_PTRACE, Yama's ptrace_scope, or another tracer is attached);
// proc.ErrGone when the process does not exist. A target that exits
// during the window is not an error: the partial profile says so in
// Profile.Ended.
package ptrace
