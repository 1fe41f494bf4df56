package sys

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// ProcessWatch tells whether one process has exited. It holds a pidfd, so
// it keeps naming the same process if the PID is reused; on kernels before
// pidfd_open (Linux 5.3) it falls back to probing the PID with signal 0,
// which sees a zombie as alive and could mistake a reused PID for the
// process.
type ProcessWatch struct {
	pid   int
	pidfd int // -1 without pidfd_open
}

// WatchProcess starts watching pid. The error matches unix.ESRCH when the
// process does not exist.
func WatchProcess(pid int) (*ProcessWatch, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	switch {
	case err == nil:
		return &ProcessWatch{pid: pid, pidfd: fd}, nil
	case errors.Is(err, unix.ENOSYS):
		if err := unix.Kill(pid, 0); err != nil && !errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("probing process %d: %w", pid, err)
		}
		return &ProcessWatch{pid: pid, pidfd: -1}, nil
	}
	return nil, fmt.Errorf("pidfd_open %d: %w", pid, err)
}

// Exited reports whether the process has exited (all its threads have:
// a pidfd turns readable when the thread group is empty, before the
// parent reaps it).
func (w *ProcessWatch) Exited() bool {
	if w.pidfd < 0 {
		return errors.Is(unix.Kill(w.pid, 0), unix.ESRCH)
	}
	fds := []unix.PollFd{{Fd: int32(w.pidfd), Events: unix.POLLIN}}
	for {
		n, err := pollNow(fds) // called at every drain: see rawpoll.go
		if err == unix.EINTR {
			continue
		}
		return err == nil && n > 0 && fds[0].Revents&(unix.POLLIN|unix.POLLHUP) != 0
	}
}

// FD is the pidfd, readable once the process has exited, for a
// PerfWaiter; -1 without pidfd_open.
func (w *ProcessWatch) FD() int { return w.pidfd }

// Close releases the pidfd.
func (w *ProcessWatch) Close() error {
	if w.pidfd < 0 {
		return nil
	}
	err := unix.Close(w.pidfd)
	w.pidfd = -1
	return err
}
