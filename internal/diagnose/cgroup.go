package diagnose

import (
	"github.com/cpuwhy/cpuwhy/internal/container"
	"github.com/cpuwhy/cpuwhy/internal/verdict"
)

// cgroupWindow is the target's cgroups over the window between two
// readings of their CPU controllers, seconds long: the levels read at
// both ends, matched by path, its own cgroup first.
func cgroupWindow(l0, l1 []container.CPULevel, seconds float64) []verdict.CgroupCPU {
	if seconds <= 0 {
		return nil
	}
	before := map[string]container.CPULevel{}
	for _, l := range l0 {
		before[l.Path] = l
	}
	var out []verdict.CgroupCPU
	for _, l := range l1 {
		b, ok := before[l.Path]
		if !ok || b.Version != l.Version {
			continue
		}
		c := verdict.CgroupCPU{Path: l.Path, Depth: l.Depth, Version: l.Version, Limit: round2(l.Limit()),
			PeriodMs: float64(l.Period.Microseconds()) / 1000, Shares: l.Shares, Usage: -1,
			Periods: float64(l.Periods - min(b.Periods, l.Periods)), Throttled: float64(l.Throttled - min(b.Throttled, l.Throttled)),
			ThrottledSeconds: (l.ThrottledTime - min(b.ThrottledTime, l.ThrottledTime)).Seconds()}
		if l.HasUsage && b.HasUsage {
			c.Usage = round1(100 * (l.Usage - min(b.Usage, l.Usage)).Seconds() / seconds)
		}
		out = append(out, c)
	}
	return out
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }
