// Package syscalls profiles the system calls of one process: per thread,
// per syscall, per result (success or each errno) and per file descriptor,
// with counts and, for a sample of calls, their duration. It is the
// `strace -c` step of an investigation without strace's cost.
//
// A Tracer gathers a Profile; two exist. Package ebpf aggregates in the
// kernel, in bounded BPF maps, with no per-call traffic to user space: the
// default. Package ptrace stops the target at every call, which slows it
// down, and is the fallback where BPF is missing. Both fill the same
// Profile, so the report (Summarize) cannot tell them apart, and tests run
// the same assertions against both.
//
// A target making hundreds of thousands of calls a second is counted in
// slices of the window by the eBPF tracer, scaled (counting.go says why
// and how much); Options.Exact, --exact, counts every call.
//
// Limits: the aggregation is bounded (Options.MaxKeys) by the keys of the
// threads alive at one time: the eBPF tracer moves the keys of threads that
// exit out of the kernel's table during the window (a thread per request
// would fill it otherwise). Calls that still find the table full are
// counted in Profile.Dropped and reported, never silently lost. Durations come from a sample of calls (Options.TimeEvery) because
// timing needs a probe on syscall entry too, which doubles the cost paid on
// every syscall of the host.
package syscalls
