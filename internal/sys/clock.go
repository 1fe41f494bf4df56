package sys

import (
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
