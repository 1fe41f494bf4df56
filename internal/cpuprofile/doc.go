// Package cpuprofile records where a process spends its CPU: it samples
// the process's threads on CPU (package sample), unwinds each user stack
// from the sampled registers and stack copy with the call frame
// information of the target's own objects (package unwind), names every
// frame from what the objects carry (package symbol) and the kernel's
// symbols, and returns a profile ready to be written (package flame).
//
// Files of the target are opened through its own root (/proc/PID/root,
// confined with openat2 RESOLVE_IN_ROOT), so a process in a container is
// profiled from the host with the binaries and libraries it really runs.
//
// A process that runs exec during the recording ran two programs at the
// same addresses. The sampler tells of the exec, in the queue of samples
// ahead of those taken after it, with the new program's mappings; the
// resolver (package stack) keeps the program before as it was last
// mapped, and each sample is unwound and named by the program it ran,
// picked by its time, since those drained from one CPU's ring may be
// older than an exec already told. Result.Execs and a note say when the
// process ran exec and what it is called since; the main thread's
// samples from before carry its name then, and Leaf.Past marks the
// addresses of a program left. Objects of a program left are opened by
// path through the process's root: one replaced or deleted since cannot
// be named. A sample of the old program unwound in the moment between
// the exec and the queue telling of it is named by whatever the process
// maps then, for an address the resolver had not named before.
//
// Cost while sampling (issue 16; bench/recordcost): samples reach a
// worker goroutine in one batch per drain, in a queue of 256 stack copies;
// once the worker names a sample in under 200 us and is idle, the
// draining goroutine unwinds, names and counts samples itself straight
// from the ring (up to 2 ms a drain), with no copy and no goroutine to
// wake. The stack copy given to the worker is shortened, per thread, to
// the deepest its complete walks reached plus 4 KiB; a stack of
// addresses already counted, whose frames nothing names from live state,
// is counted by its key without naming again. At 99 Hz on one busy
// thread that is 0.06-0.13% of a core while sampling, against perf
// record's 0.04-0.07% (it was 0.24-0.38%). Where a runtime reads the
// target's live state or the stack copies (Python), every sample goes
// to the worker, whole, and promptly.
//
// It is the package the diagnosis drives for a few seconds on the hot
// threads, and the engine of `cpuwhy record`.
package cpuprofile
