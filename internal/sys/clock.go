package sys

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// SinceBoot returns CLOCK_BOOTTIME: the clock that /proc's start times
// ("ticks after boot") are counted on.
func SinceBoot() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		// CLOCK_BOOTTIME exists since Linux 2.6.39; fall back to the
		// monotonic clock rather than fail a scan.
		_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	}
	return time.Duration(ts.Nano())
}

// Monotonic returns CLOCK_MONOTONIC: the clock perf events opened with
// ClockMonotonic stamp their records on, to place them in a window.
func Monotonic() time.Duration {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) // cannot fail on Linux
	return time.Duration(ts.Nano())
}

// ProcessCPUTime returns the CPU time process pid has used, from its
// CPU-time clock (CPUCLOCK_SCHED of the process: the clock id
// clock_getcpuclockid would give), which the kernel brings up to date for
// its running threads when read, where /proc's schedstat and stat show a
// running thread's time as of its last tick or switch, a few milliseconds
// behind.
func ProcessCPUTime(pid int) (time.Duration, error) {
	var ts unix.Timespec
	// include/linux/posix-timers.h: a process's clock is ~pid << 3,
	// with CPUCLOCK_SCHED (2) in the low bits.
	id := int32((^pid)<<3 | 2)
	if err := unix.ClockGettime(id, &ts); err != nil {
		return 0, fmt.Errorf("reading the CPU clock of process %d: %w", pid, err)
	}
	return time.Duration(ts.Nano()), nil
}
