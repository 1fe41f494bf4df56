package sys

import (
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// CPUTime is user and system CPU time, from getrusage(2).
type CPUTime struct {
	User, System time.Duration
}

// Total is user plus system time.
func (c CPUTime) Total() time.Duration { return c.User + c.System }

// Sub is the CPU used between an earlier reading and c.
func (c CPUTime) Sub(earlier CPUTime) CPUTime {
	return CPUTime{User: c.User - earlier.User, System: c.System - earlier.System}
}

// ProcessCPU is the CPU time used so far by every thread of the calling
// process, the Go runtime's (garbage collector, scheduler) included.
func ProcessCPU() CPUTime { return rusage(unix.RUSAGE_SELF) }

// ThreadCPU is the CPU time used so far by the calling OS thread only; it
// means something only to a goroutine locked to its thread
// (runtime.LockOSThread).
func ThreadCPU() CPUTime { return rusage(unix.RUSAGE_THREAD) }

// OnThread runs f on an OS thread of its own and returns the CPU that
// thread used meanwhile: f's own CPU, apart from the process's other
// work (though not the garbage collection of what f allocates).
func OnThread(f func()) time.Duration {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	t0 := ThreadCPU().Total()
	f()
	return ThreadCPU().Total() - t0
}

func rusage(who int) CPUTime {
	var ru unix.Rusage
	// getrusage fails only for an invalid who or a bad pointer.
	_ = unix.Getrusage(who, &ru)
	return CPUTime{
		User:   time.Duration(ru.Utime.Nano()),
		System: time.Duration(ru.Stime.Nano()),
	}
}
