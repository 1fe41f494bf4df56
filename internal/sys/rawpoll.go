package sys

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Non-blocking polls made without telling the Go scheduler (RawSyscall).
//
// Every syscall made the usual way (unix.Syscall) enters the scheduler's
// syscall state, and the first one after the runtime's sysmon thread went
// to deep sleep wakes it, and it then polls every 20 µs for a millisecond
// before backing off again: 50 wakeups of a thread for each time a
// sampler that sleeps most of the time wakes to drain its rings, the
// largest single part of `cpuwhy record`'s CPU while sampling at 99 Hz
// (perf on it). A poll with a zero timeout cannot block, so it needs none
// of the scheduler's handing over of the processor.

// epollWaitNow is epoll_wait(fd, events, 0).
func epollWaitNow(fd int, events []unix.EpollEvent) (int, error) {
	if len(events) == 0 {
		return 0, nil
	}
	n, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(fd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// pollNow is ppoll(fds, {0, 0}, NULL): whether fds are ready, at once.
func pollNow(fds []unix.PollFd) (int, error) {
	if len(fds) == 0 {
		return 0, nil
	}
	var zero unix.Timespec
	n, _, errno := unix.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&fds[0])), uintptr(len(fds)), uintptr(unsafe.Pointer(&zero)), 0, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}
