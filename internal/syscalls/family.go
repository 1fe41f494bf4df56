package syscalls

import "slices"

// Families of syscalls by what a call does, by name (as sysno names them).
// The report ranks threads with them and the verdict rules look for them;
// they live here so that both agree.
var (
	PollCalls      = []string{"poll", "ppoll", "select", "pselect6", "epoll_wait", "epoll_pwait", "epoll_pwait2"}
	SleepCalls     = []string{"nanosleep", "clock_nanosleep"}
	WriteCalls     = []string{"write", "writev", "pwrite64", "pwritev", "pwritev2", "sendto", "sendmsg"}
	ForkCalls      = []string{"fork", "vfork", "clone", "clone3"}
	WaitChildCalls = []string{"wait4", "waitid"}
	// ZeroCopyCalls move data inside the kernel without a copy through
	// user space: already the cheap way to do what they do.
	ZeroCopyCalls = []string{"sendfile", "splice", "tee", "vmsplice", "copy_file_range"}

	// waitingCalls are made to wait for something: an fd to be ready, a
	// timer, a lock, a child, a signal, an AIO completion.
	waitingCalls = slices.Concat(PollCalls, SleepCalls, WaitChildCalls,
		[]string{"futex", "pause", "rt_sigsuspend", "rt_sigtimedwait", "io_getevents", "io_pgetevents"})
)

// Waits reports whether syscall name is made to wait. A tracer times a call
// from entry to return, so the time of these is mostly spent off the CPU:
// a long one is a wait, not the kernel's work. (A blocking read of a socket
// waits too, but is also how data is copied: it does not count as one.)
func Waits(name string) bool { return slices.Contains(waitingCalls, name) }
