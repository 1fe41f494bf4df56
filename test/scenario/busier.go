package scenario

import (
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/sys"
)

// Busier says whether process pid still uses at least half the CPU that
// process than does, measured side by side: a test that expects its
// spinner to be the host's busiest process accepts another as busy, a
// spinner of another package's tests (run at the same time, some in
// containers whose cgroup the scheduler gives a share of its own).
func Busier(t testing.TB, pid, than int) bool {
	t.Helper()
	cpu := func() (a, b time.Duration, err error) {
		if a, err = sys.ProcessCPUTime(pid); err == nil {
			b, err = sys.ProcessCPUTime(than)
		}
		return a, b, err
	}
	a0, b0, err := cpu()
	if err == nil {
		time.Sleep(300 * time.Millisecond)
		var a1, b1 time.Duration
		if a1, b1, err = cpu(); err == nil {
			// Within the same window, so no rate depends on the CPU;
			// two spinners sharing loaded cores drift by a quarter
			// between windows, while a wrong pick (an idle process,
			// a short one) is far below half.
			t.Logf("busiest: %d used %v, the test's process %v, in the same 300 ms", pid, a1-a0, b1-b0)
			return 2*(a1-a0) >= b1-b0
		}
	}
	t.Logf("busiest: %d could not be compared with %d: %v", pid, than, err)
	return false
}
