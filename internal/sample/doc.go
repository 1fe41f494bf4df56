// Package sample records where one process's threads are on CPU, with
// perf_event_open: a software cpu-clock event per thread at 99 Hz by
// default, each sample carrying the thread, the time, the user registers
// a stack unwinder starts from (IP, SP, frame pointer; and LR on arm64),
// a copy of the top of the user stack, and, when asked for, the kernel
// callchain. It does not unwind user stacks or name user PCs: that is
// the job of the unwind and symbol packages, which work from Sample.Regs
// and Sample.Stack.
//
// One event per thread and CPU (pid=TID, cpu=N, no inherit), every event
// of a CPU writing into one ring (PERF_EVENT_IOC_SET_OUTPUT), as perf
// record -p does: it needs no CPU-wide privileges and samples only the
// target, and a thousand threads cost two rings, not a thousand (a ring
// per thread locked 256 KiB each). Events open disabled; Options.Ready
// is called once all are open, and the window starts when it returns,
// so that setting up thousands of events is not part of it. cpu-clock is
// sampled by period (1/frequency of CPU time, exact) rather than by
// frequency. New threads are found by rereading /proc/PID/task: at once
// when a drain finds a fork record of the target (the events carry the
// task bit, so the kernel writes one when a sampled thread starts
// another), else every 100 ms, the interval doubling up to 1 s while
// the list stays the same (or twenty times what reading it took, for
// thousands of threads). The list is read with raw syscalls on
// /proc/PID/task held open (proc.TaskList), which do not wake the Go
// runtime's sysmon. A thread living for less than a drain or a
// rescan (spawner's) is likely never sampled, so the request threads of
// a thread-per-request server (Python's http.server) are mostly missing
// from the samples, though their CPU is counted (the diagnosis's row of
// exited threads); gone threads have their events closed at the next
// rescan. Inherited events (perf record -p's way) were tried and
// dropped: on http.server under wrk the kernel (6.18) gave no sample of
// the main thread in one recording of two, and perf record -p the same;
// and a thread's event starts a period afresh, so a thread of less than
// a period's CPU is never sampled either way. CPU-wide events with a BPF
// filter on the process would sample such threads fairly. Where the open-files limit cannot
// hold an event per thread and CPU and cannot be raised, the busiest
// threads are sampled, with a note.
//
// cpuwhy sleeps until the kernel wakes it, as perf record does: each
// ring (512 KiB with the default stack copy up to about 1 kHz, as perf
// record maps; grown up to 2 MiB where locked memory is unlimited,
// within 8 MiB over all CPUs) has a watermark that leaves half the
// 512 KiB of room after it, and its fd, with the target's pidfd,
// is in an epoll set that the Go runtime's poller watches
// (sys.PerfWaiter). A drain runs when a ring reaches its watermark
// (about once a second on a busy CPU at 99 Hz with 2 MiB rings, every
// 150 ms with 512 KiB; never for an idle one), the target exits, a
// rescan is due, or the window ends, when the events are disabled and
// every ring is read to its end. Draining on a 60 ms timer instead cost
// 0.74% of a core at 99 Hz; half-full 512 KiB rings, 0.24-0.26%; these,
// with the consumer's work cut (cpuprofile), 0.06-0.13% (bench/recordcost).
// What the kernel could not fit is counted in Recording.Lost. With
// Options.Handle, each sample is handed over as it is drained and
// nothing is kept; Options.Drained marks the end of each drain, so a
// consumer can pass samples on in batches.
//
// An exec the target runs is reported by the kernel on the ring of the
// CPU it ran on (PERF_RECORD_COMM with the exec flag, stamped on the
// samples' clock, CLOCK_MONOTONIC). Each drain first takes how far every
// ring is written, scans them up to there for execs (without consuming
// them), tells of each (Options.Exec, Recording.Execs) with the new
// program's mappings, read then, and only then hands the samples over: no
// sample taken after an exec comes before it, whichever ring holds it,
// though samples taken before it on other CPUs may come after it (each
// has its Time). The events follow their threads through the exec. A
// thread other than the main one that runs exec takes the PID as its TID
// (the kernel's de_thread): at the next rescan its TID is gone from
// /proc/PID/task while its events have not exited (no POLLHUP), so they
// are filed under the PID, and the old main thread's closed.
//
// Limits:
//   - cpu-clock ticks only while a thread runs, so 99 Hz is per second of
//     the thread's CPU time: a thread that had half a core gives about 50
//     samples a second.
//   - When the kernel refuses samples in kernel mode (perf_event_paranoid
//     of 2 or more without CAP_PERFMON), Record falls back to
//     exclude_kernel with a note: time in the kernel is then invisible,
//     not attributed elsewhere.
//   - Without Options.Handle, memory is bounded by Options.MaxSamples and
//     Options.MaxBytes of stack copies; samples over them are counted in
//     Recording.Dropped.
//   - The mappings of an exec's program are read when a drain sees it,
//     up to a drain interval later: of several execs in one interval, only
//     the last has its mappings. Recording.Execs keeps the first 64.
//   - A kernel that refuses to report execs (comm_exec came in Linux
//     3.16, use_clockid in 4.1) is sampled without, with a note.
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
