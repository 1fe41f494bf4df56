package diagnose

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/verdict"
)

// HostFiles are the host's accounting files at one end of the window,
// as read: /proc/stat, /proc/softirqs and /proc/loadavg. They are kept
// as bytes so that a recording holds the files themselves and the
// replay goes through the same parsers.
type HostFiles struct {
	Stat     []byte
	Softirqs []byte
	Loadavg  []byte
}

// readHost reads the host's files; a file that cannot be read is left
// empty, and the window says what is missing.
func readHost(fs proc.FS) *HostFiles {
	h := &HostFiles{}
	h.Stat, _ = fs.ReadCapped(4<<20, "stat")
	h.Softirqs, _ = fs.ReadCapped(4<<20, "softirqs")
	h.Loadavg, _ = fs.ReadCapped(4096, "loadavg")
	return h
}

// hostWindow is the host over the window between two readings of its
// files, seconds long; allowed are the target's CPUs, when known.
func hostWindow(h0, h1 *HostFiles, seconds float64, allowed []int) (*verdict.Host, error) {
	if h0 == nil || h1 == nil || seconds <= 0 {
		return nil, nil
	}
	s0, err := proc.ParseHostStat(h0.Stat)
	if err != nil {
		return nil, fmt.Errorf("the host's stat at the start of the window: %w", err)
	}
	s1, err := proc.ParseHostStat(h1.Stat)
	if err != nil {
		return nil, fmt.Errorf("the host's stat at the end of the window: %w", err)
	}
	h := &verdict.Host{CPUs: len(s1.CPUs), All: modes(s1.All.Sub(s0.All)), Runnable: max(0, s1.ProcsRunning-1), Allowed: allowed}
	before := map[int]proc.CPUTimes{}
	for _, c := range s0.CPUs {
		before[c.CPU] = c
	}
	for _, c := range s1.CPUs {
		if b, ok := before[c.CPU]; ok {
			h.PerCPU = append(h.PerCPU, modes(c.Sub(b)))
		}
	}
	if l, err := proc.ParseLoadavg(h1.Loadavg); err == nil {
		h.Load1 = l.Load1
	}
	q0, err0 := proc.ParseSoftirqs(h0.Softirqs)
	q1, err1 := proc.ParseSoftirqs(h1.Softirqs)
	if err0 == nil && err1 == nil && slices.Equal(q0.CPUs, q1.CPUs) {
		for _, r1 := range q1.Types {
			i := slices.IndexFunc(q0.Types, func(r proc.SoftirqCount) bool { return r.Name == r1.Name })
			if i < 0 {
				continue
			}
			r := verdict.SoftirqRate{Name: r1.Name, CPUs: q1.CPUs}
			for j, n := range r1.PerCPU {
				per := float64(n-min(n, q0.Types[i].PerCPU[j])) / seconds
				r.PerCPU = append(r.PerCPU, round1(per))
				r.PerSecond += per
			}
			r.PerSecond = round1(r.PerSecond)
			if r.PerSecond > 0 {
				h.Softirqs = append(h.Softirqs, r)
			}
		}
		slices.SortStableFunc(h.Softirqs, func(a, b verdict.SoftirqRate) int { return cmp.Compare(b.PerSecond, a.PerSecond) })
	}
	return h, nil
}

// modes turns the ticks of one window into percents of that time.
func modes(d proc.CPUTimes) verdict.HostModes {
	total := float64(d.Total())
	p := func(v uint64) float64 {
		if total == 0 {
			return 0
		}
		return round1(100 * float64(v) / total)
	}
	return verdict.HostModes{CPU: d.CPU, User: p(d.User + d.Nice), System: p(d.System), IRQ: p(d.IRQ), SoftIRQ: p(d.SoftIRQ),
		IOWait: p(d.IOWait), Steal: p(d.Steal), Idle: p(d.Idle)}
}
