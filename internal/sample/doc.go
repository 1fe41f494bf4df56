// Package sample records where one process's threads are on CPU, with
// perf_event_open: a software cpu-clock event per thread at 99 Hz by
// default, each sample carrying the thread, the time, the user registers
// a stack unwinder starts from (IP, SP, frame pointer; and LR on arm64),
// a copy of the top of the user stack, and, when asked for, the kernel
// callchain. It does not unwind user stacks or name user PCs: that is
// the job of the unwind and symbol packages, which work from Sample.Regs
// and Sample.Stack.
//
// One event per thread (pid=TID, cpu=-1, no inherit) rather than one per
// CPU: it needs no CPU-wide privileges and samples only the target. The
// price is that new threads are found by rereading /proc/PID/task every
// 100 ms, so a thread living for less than that (spawner's) is likely
// never sampled; threads that are gone have their ring drained and their
// event closed at the next rescan.
//
// The rings are drained on a 20 ms ticker rather than woken by epoll:
// at 99 Hz a thread writes about two samples per tick, and one timer
// wakeup for all threads costs less than a wakeup per sample per thread.
// Each ring holds eight samples of the largest size; what the kernel
// could not fit is counted in Recording.Lost.
//
// Limits:
//   - cpu-clock ticks only while a thread runs, so 99 Hz is per second of
//     the thread's CPU time: a thread that had half a core gives about 50
//     samples a second.
//   - When the kernel refuses samples in kernel mode (perf_event_paranoid
//     of 2 or more without CAP_PERFMON), Record falls back to
//     exclude_kernel with a note: time in the kernel is then invisible,
//     not attributed elsewhere.
//   - Memory is bounded by Options.MaxSamples and Options.MaxBytes of
//     stack copies; samples over them are counted in Recording.Dropped.
//   - Kernel PCs are named from /proc/kallsyms (KernelSymbols); with
//     kptr_restrict hiding addresses every kernel frame is "[kernel]".
//
// Errors: ErrPermission when the kernel refuses to sample the target at
// all, ErrNotSupported when it has no perf events, ErrGone when the
// target does not exist. A target that exits while it is recorded ends
// the recording early with a note, not an error. ParseSample and
// ParseKallsyms return *FormatError (or a wrapped parse error) for
// malformed input, which may come from a hostile container.
package sample
