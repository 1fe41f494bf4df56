package scenario

import (
	"runtime"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cpuwhy/cpuwhy/internal/sys"
)

// Yardstick is how fast this machine makes the cheapest system call right
// now: getppid calls per second of the calling thread's CPU time, the
// median of five windows of 20 ms of CPU. Tests bound a scenario's calls
// per CPU second as a fraction of it, so that the bound follows the
// machine: on a CPU half as fast, or with costlier kernel entries
// (mitigations, a hypervisor), the yardstick and the scenario slow down
// alike. Per CPU second, the time other work takes from the thread does
// not count. Measured on an AMD EPYC VM with 2 cores: 4.5-5.9M a second
// when quiet, down to 2.9M while other tests ran beside it.
func Yardstick(tb testing.TB) float64 {
	tb.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// Only a hang-catcher: the five windows take 0.1 s of CPU.
	deadline := time.Now().Add(30 * time.Second)
	var rates []float64
	for range 5 {
		c0 := sys.ThreadCPU().Total()
		for n := 1000; ; n += 1000 {
			for range 1000 {
				unix.Getppid()
			}
			if d := sys.ThreadCPU().Total() - c0; d >= 20*time.Millisecond {
				rates = append(rates, float64(n)/d.Seconds())
				break
			}
			if time.Now().After(deadline) {
				tb.Fatalf("the yardstick's thread got under 20 ms of CPU in 30 s")
			}
		}
	}
	slices.Sort(rates)
	return rates[len(rates)/2]
}
