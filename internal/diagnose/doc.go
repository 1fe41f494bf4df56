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
package diagnose
