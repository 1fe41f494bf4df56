package sys

import (
	"fmt"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// PerfWaiter sleeps until one of its perf rings reaches its watermark
// (PerfBitWatermark with Wakeup bytes, or wakeup_events samples), a
// timeout passes, or Wake is called, as perf record sleeps in poll(2) on
// its rings. The rings' fds are in an epoll set of its own, and that
// epoll fd is in the Go runtime's poller: a wait parks the goroutine and
// holds no OS thread, so a sampler wakes only when the kernel has
// samples for it, not on a timer. The timeout is a timerfd in the set
// too, armed with a raw syscall, not a deadline of the Go poller: a Go
// timer woke the runtime's sysmon thread at every wait (it sleeps until
// the next timer), about two wakeups of a thread for each drain, a tenth
// of `cpuwhy record`'s CPU while sampling at 99 Hz.
type PerfWaiter struct {
	epfd  int
	wake  int // an eventfd in the set, written by Wake
	timer int // a timerfd in the set, armed by Wait
	file  *os.File
	raw   syscall.RawConn
	evs   []unix.EpollEvent
	ready bool // the last Wait was woken
}

// NewPerfWaiter makes an empty waiter.
func NewPerfWaiter() (*PerfWaiter, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1 for the perf rings: %w", err)
	}
	w := &PerfWaiter{epfd: epfd, wake: -1, timer: -1, evs: make([]unix.EpollEvent, 8)}
	if w.wake, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("eventfd for the perf rings' waiter: %w", err)
	}
	if err := w.add(w.wake); err != nil {
		w.closeFDs()
		return nil, err
	}
	if w.timer, err = unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_CLOEXEC|unix.TFD_NONBLOCK); err != nil {
		w.closeFDs()
		return nil, fmt.Errorf("timerfd for the perf rings' waiter: %w", err)
	}
	if err := w.add(w.timer); err != nil {
		w.closeFDs()
		return nil, err
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		w.closeFDs()
		return nil, fmt.Errorf("making the perf rings' epoll fd non-blocking: %w", err)
	}
	// A non-blocking fd given to os.NewFile joins the runtime's poller
	// (an epoll fd may be watched by another epoll).
	w.file = os.NewFile(uintptr(epfd), "perf-rings")
	if w.raw, err = w.file.SyscallConn(); err != nil {
		w.file.Close()
		unix.Close(w.wake)
		return nil, fmt.Errorf("polling the perf rings: %w", err)
	}
	return w, nil
}

func (w *PerfWaiter) add(fd int) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
	if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return fmt.Errorf("watching fd %d for the perf rings: %w", fd, err)
	}
	return nil
}

// Add watches a ring: Wait returns when the kernel wakes it.
func (w *PerfWaiter) Add(e *PerfEvent) error { return w.add(e.fd) }

// AddFD watches any pollable fd (a pidfd, which turns readable when its
// process exits).
func (w *PerfWaiter) AddFD(fd int) error { return w.add(fd) }

// Wait sleeps until a ring is woken, Wake is called or timeout passes,
// and reports whether it was woken (false: the timeout). A wake that
// came while nobody waited ends the next Wait at once.
func (w *PerfWaiter) Wait(timeout time.Duration) (bool, error) {
	if err := armTimer(w.timer, max(timeout, time.Nanosecond)); err != nil {
		return false, fmt.Errorf("waiting for the perf rings: arming the timer: %w", err)
	}
	w.ready = false
	calls := 0
	timedOut := false
	err := w.raw.Read(func(fd uintptr) bool {
		calls++
		n, err := epollWaitNow(int(fd), w.evs)
		for err == unix.EINTR {
			n, err = epollWaitNow(int(fd), w.evs)
		}
		others := 0
		for _, ev := range w.evs[:max(n, 0)] {
			switch int(ev.Fd) {
			case w.wake, w.timer:
				var buf [8]byte
				unix.RawSyscall(unix.SYS_READ, uintptr(ev.Fd), uintptr(unsafe.Pointer(&buf[0])), 8) // non-blocking: see rawpoll.go
			}
			if int(ev.Fd) == w.timer {
				timedOut = true
			} else {
				others++
			}
		}
		// A second call comes after the runtime's poller saw the set
		// turn readable. The set's own wait may then find nothing: a
		// perf fd's readiness is one-shot (the kernel clears it as it
		// reports it), and the outer poll that saw it took it. It was
		// a wakeup all the same, unless the timer's was the one seen.
		w.ready = others > 0 || (calls > 1 && n <= 0)
		// false parks the goroutine until the epoll fd turns readable.
		return w.ready || timedOut || err != nil
	})
	if err != nil {
		return false, fmt.Errorf("waiting for the perf rings: %w", err)
	}
	return w.ready, nil
}

// armTimer sets timerfd fd to expire once, d from now, with a raw
// syscall (see rawpoll.go).
func armTimer(fd int, d time.Duration) error {
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(d.Nanoseconds())}
	if _, _, errno := unix.RawSyscall6(unix.SYS_TIMERFD_SETTIME, uintptr(fd), 0, uintptr(unsafe.Pointer(&spec)), 0, 0, 0); errno != 0 {
		return errno
	}
	return nil
}

// Wake ends a Wait from another goroutine (or the next one).
func (w *PerfWaiter) Wake() {
	one := [8]byte{1}
	unix.Write(w.wake, one[:])
}

func (w *PerfWaiter) closeFDs() {
	unix.Close(w.epfd)
	if w.wake >= 0 {
		unix.Close(w.wake)
	}
	if w.timer >= 0 {
		unix.Close(w.timer)
	}
}

// Close releases the waiter; the rings stay open.
func (w *PerfWaiter) Close() error {
	err := w.file.Close()
	if cerr := unix.Close(w.wake); err == nil {
		err = cerr
	}
	if cerr := unix.Close(w.timer); err == nil {
		err = cerr
	}
	return err
}
