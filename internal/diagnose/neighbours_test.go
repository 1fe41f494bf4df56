package diagnose

import (
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/container"
	"github.com/cpuwhy/cpuwhy/internal/proc"
)

// Over a 2 s window (200 ticks): the target (PID 10) is left out; a loop
// pinned to the target's CPU counts whole; one that may run on both CPUs
// counts half on the target's; one pinned elsewhere is not a neighbour; a
// kernel thread is listed with the kernel threads wherever it ran; a
// process that started again under the same PID (new start time) and one
// below 1% are left out.
func TestNeighbourWindow(t *testing.T) {
	at := func(pid int, comm string, ticks, start uint64, kthread bool, allowed []int) Neighbour {
		st := proc.Stat{PID: pid, Comm: comm, UTime: ticks, StartTime: start}
		if kthread {
			st.Flags = 0x00200000
		}
		return Neighbour{Stat: st, Allowed: allowed}
	}
	n0 := []Neighbour{at(10, "target", 0, 1, false, nil), at(20, "pinned", 0, 1, false, nil), at(21, "spread", 0, 1, false, nil),
		at(22, "elsewhere", 0, 1, false, nil), at(23, "ksoftirqd/0", 0, 1, true, nil), at(24, "reborn", 0, 1, false, nil), at(25, "idle", 0, 1, false, nil)}
	n1 := []Neighbour{at(10, "target", 150, 1, false, []int{1}), at(20, "pinned", 100, 1, false, []int{1}), at(21, "spread", 120, 1, false, []int{0, 1}),
		at(22, "elsewhere", 200, 1, false, []int{0}), at(23, "ksoftirqd/0", 30, 1, true, []int{0}), at(24, "reborn", 100, 9, false, []int{1}), at(25, "idle", 1, 1, false, []int{1})}
	nb, k := neighbourWindow(n0, n1, 2, 10, []int{1})
	if len(nb) != 2 || nb[0].Name != "pinned" || nb[0].CPU != 50 || nb[0].Shared != 50 || nb[1].Name != "spread" || nb[1].CPU != 60 || nb[1].Shared != 30 {
		t.Errorf("neighbours %+v", nb)
	}
	if len(k) != 1 || k[0].Name != "ksoftirqd/0" || k[0].CPU != 15 || !k[0].Kernel {
		t.Errorf("kernel threads %+v", k)
	}
	if nb, k := neighbourWindow(nil, n1, 2, 10, nil); nb != nil || k != nil {
		t.Errorf("no first reading: %+v %+v", nb, k)
	}
}

func TestCgroupWindow(t *testing.T) {
	l := func(periods, throttled uint64, tt, usage time.Duration) []container.CPULevel {
		return []container.CPULevel{
			{Path: "/pod/c", Depth: 0, Version: 2, Period: 100 * time.Millisecond, Usage: usage, HasUsage: true},
			{Path: "/pod", Depth: 1, Version: 2, Quota: 50 * time.Millisecond, Period: 100 * time.Millisecond, Periods: periods, Throttled: throttled, ThrottledTime: tt, Usage: usage, HasUsage: true, Shares: 39},
		}
	}
	w := cgroupWindow(l(100, 50, time.Second, 10*time.Second), l(120, 65, 2*time.Second, 11*time.Second), 2)
	if len(w) != 2 {
		t.Fatalf("%+v", w)
	}
	pod := w[1]
	if pod.Limit != 0.5 || pod.PeriodMs != 100 || pod.Periods != 20 || pod.Throttled != 15 || pod.ThrottledSeconds != 1 || pod.Usage != 50 || pod.Shares != 39 {
		t.Errorf("pod %+v", pod)
	}
	// Usage unknown at one end: -1.
	a, b := l(1, 1, 0, 0), l(2, 2, 0, 0)
	a[0].HasUsage = false
	if w := cgroupWindow(a, b, 2); w[0].Usage != -1 {
		t.Errorf("usage %v, want -1", w[0].Usage)
	}
}
