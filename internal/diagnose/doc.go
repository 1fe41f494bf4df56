// Package diagnose is cpuwhy's one-command investigation: it watches one
// process for a window with every instrument at once — thread CPU from
// /proc, the syscall profile (eBPF, else ptrace) with results and fds, and
// on-CPU stack samples unwound and named — builds a verdict.Observation
// from them, and asks package verdict what it means.
//
// The instruments run side by side over the same window, so the numbers a
// verdict quotes (a thread's CPU, its syscall rate, its hottest stack)
// describe the same seconds. What each costs the target is what it costs
// alone: the eBPF programs aggregate in the kernel, the sampler takes 99
// samples a second of CPU per thread.
//
// Everything the diagnosis reads of the target comes through a seam in
// Options (seams.go): the CPU accounting at each end of the window
// (Accounting), the syscall tracers (Tracers), the stack sampler
// (Profiler), what the fds are (FDs), the mappings (Maps) and the bytes of
// the hot code (Memory). Left nil, each is the real one over /proc, BPF,
// perf events and process_vm_readv; the tests give recorded evidence
// instead (testdata/*.evidence.json, recorded from the scenarios by
// go test -run TestPatterns -record-evidence DIR), so the whole
// diagnosis, verdicts and reports included, runs without root or a live
// target.
//
// Errors: a target that exited during the window matches ErrGone. When
// neither the tracer nor the sampler could attach, the error is a
// *BlindError: one line for the user (the missing capabilities when some
// are), and both causes for errors.Is and errors.As. One instrument
// failing is not an error: the report notes what is missing and why.
package diagnose
