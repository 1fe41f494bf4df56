// Package ebpf is the syscalls.Tracer that aggregates in the kernel.
//
// Two BTF-typed raw tracepoint programs (tp_btf, bpf/syscalls.bpf.c: plain
// loads of the registers instead of probe reads) run on every system
// call of the host while a trace lasts, and return at once for any process
// but the target. sys_exit counts each call of the target in a per-CPU
// hash keyed by thread, syscall, result and (for syscalls that take one
// first) file descriptor; a run of calls with one key on one CPU (a busy
// loop's) is folded in a per-CPU slot holding the last key and its count,
// and added to the hash once, when another key comes on that CPU or, for
// the last run, by the tracer after detaching (addPending). sys_enter, attached only when calls are timed or
// stacks recorded, picks one call in Options.TimeEvery at random, notes its
// entry time, and records its user stack. Nothing crosses to user space per
// call: the tracer reads the maps once, after detaching, so a target that
// makes a million calls a second costs the tracer no more CPU than one
// that makes ten.
//
// A target making more than syscalls.SampleAbove calls a second over the
// first syscalls.CountProbe of the window is counted from then on in
// slices of it, the programs detached between them (countslice.go): the
// tracepoint's own cost, paid in the target's context at each call, is
// what slows a poller making millions of calls a second, and only
// detaching removes it. Profile.Counting says how long was counted, and
// the report scales the counts; Options.Exact counts every call.
//
// Because the programs only aggregate, a tracer that dies (even by
// SIGKILL) leaves nothing behind: the kernel detaches them when the last
// file descriptor of their links closes with the process, and the target
// runs on.
//
// Limits:
//   - Calls are counted at their exit, so calls that never return (exit,
//     exit_group, a successful execve's old image) are not counted, and a
//     call in progress when the window ends is counted only if it returns
//     before detaching.
//   - Counted in slices, the counts are estimates, and rates are those
//     of the slices, while the counting slows the target; keys (threads,
//     fds) active only between slices are missing.
//   - Durations come from a random sample of calls, so Stat.Timed is about
//     Count/TimeEvery; calls in progress when the trace started are never
//     timed, which under-represents calls longer than the window.
//   - Stacks are walked by frame pointers (bpf_get_stackid): frames of code
//     built without them, such as Debian's libc, are missing or wrong past
//     the first one. The stack of a sampled call is recorded only. For a
//     CPython target (Options.Chains), sys_enter also walks the thread's
//     Python frame chain with each stack (package python/ebpf's walk,
//     linked in): each distinct chain is kept once, in py_chains (1024
//     chains, 8 KiB each, allocated as they come), and stacks are counted
//     per (thread, syscall, stack, chain).
//   - The aggregation table holds Options.MaxKeys keys, allocated as they
//     come; a call whose key it cannot take (full, or its allocator dry in
//     a burst of new keys) is counted in spill, a preallocated table of as
//     many keys without durations (about 90 bytes a key for all CPUs).
//     Only a call whose key fits in neither is lost, and counted in
//     Profile.Dropped: none below MaxKeys keys.
//
// Errors: New never fails; Trace returns an error matching
// syscalls.ErrNotSupported, with the reason, when this kernel or these
// privileges cannot load or attach the programs (no CAP_BPF and
// CAP_PERFMON or CAP_SYS_ADMIN, a kernel before 5.5 or without BTF),
// so the caller can fall back to ptrace. Options past their limits
// (syscalls.ErrOptions) and an aggregation table the kernel will not make
// as big as Options.MaxKeys asks are errors of their own, never
// ErrNotSupported: a number the user chose is no reason to stop the
// target at every call.
//
// The programs are compiled by bpf2go with Debian 12's clang-14 for amd64
// and arm64; the objects and their Go wrappers are committed. Run gen.sh
// after changing the C source; CI regenerates and checks nothing changed.
package ebpf

//go:generate go tool bpf2go -cc clang-14 -strip llvm-strip-14 -target amd64,arm64 -type key -type stat -type stack_key -type stack_value -type last -type spilled syscalls bpf/syscalls.bpf.c -- -O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu
