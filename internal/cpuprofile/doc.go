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
// It is the package the diagnosis drives for a few seconds on the hot
// threads, and the engine of `cpuwhy record`.
package cpuprofile
