// Package stack turns what was seen of a thread (registers and a copy of
// its stack, or a list of return addresses) into named frames, for every
// command that shows a stack: record, the diagnosis, dump and syscalls
// --stacks. One Resolver serves one process: it unwinds with the call
// frame information of the objects the process maps, opened the way the
// symbolizer opens them (the very file mapped, through the target's root
// or its map_files), names each address once, and lets language runtimes
// name their own frames.
//
// # Runtimes
//
// A Runtime is one language runtime's knowledge, in a package of its own
// (internal/stack/perfmap: the /tmp/perf-PID.map files that JITs write;
// internal/stack/python: CPython's frames, read from its memory),
// behind one small interface, as the OpenTelemetry eBPF profiler keeps its
// interpreters: it recognises itself in a process (Attach), names or
// replaces the frames of one sample (Expand), follows the process's
// mappings as they change (Sync) and lets go (Detach). An instance that
// is also a CodeUnwinder gives the unwinder call frame information for
// code of its runtime that has none (CPython's perf trampolines). One
// that is an EventReader reads what it needs of each sample in the kernel
// as the sample is taken (CPython's frame chain): Resolver.Events loads
// its BPF program and gives the sampler what attaches it to each of its
// events (sample.Options.Event), and At tells it each sample's time, to
// match the sample to what was read. One that reads the process's live
// state when a sample is named instead (a LiveReader) has the sampler
// woken at every sample (Prompt). The
// resolver and its callers never learn a language: a frame says which
// runtime named it in its Kind. Frame.Label is how a frame prints in a
// stack: a runtime's frame with a source position (a Python function)
// carries it, a native frame its function alone.
//
// # Programs
//
// A process that runs exec runs another program at the same addresses.
// Told of an exec (Exec, with its time and the new program's mappings),
// the resolver keeps the program before as it was last mapped, its
// unwinding tables and its names, read from its objects by path (package
// symbol's Image), since /proc no longer shows them; At picks, for each
// sample, the program it ran by the sample's time, so samples may come
// out of order. The mappings of the program the process runs are the
// only ones read again. At most four programs are kept (maxImages): a sample of
// an older one is named by nothing, and a note counts them. Runtimes
// name frames of the program the process runs only.
//
// # Sharing
//
// A long-lived process (cpuwhy watch and agent) makes a resolver per
// diagnosis, again and again. What does not change from one to the next
// is kept in a Shared (Options.Shared): the kernel's symbols, the names
// read from objects and their unwinding tables, each in a bounded cache
// keyed by the file's identity, so that libc is read once however many
// diagnoses unwind and name its frames, and a container's libc is not
// the host's.
//
// # Counting
//
// Counts counts samples as they arrive by thread, program and frames,
// interning each distinct frame once, so memory grows with the distinct
// stacks of a profile, not with its length.
//
// # Limits
//
// A process that maps new code (dlopen, a JIT, exec) is followed when an
// address falls outside what the resolver knows: the mappings are read
// again, at most every refreshInterval.
package stack
