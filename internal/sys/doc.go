// Package sys is cpuwhy's one door to raw system calls.
//
// Everything that goes below the os package — reading /proc files into
// reused buffers, capabilities, perf_event_open and its ring buffer,
// ptrace, bpf, and openat2 (OpenInRoot, which opens a target's files
// confined to its root) — lives here, so the rest of the tree reads as
// plain Go and a reviewer has one place to audit what cpuwhy asks of the
// kernel.
//
// Errors are returned as the kernel gave them (wrapped with the path or
// operation), so callers can test them with errors.Is against unix.ENOENT,
// unix.ESRCH, unix.EACCES and unix.EPERM.
package sys
