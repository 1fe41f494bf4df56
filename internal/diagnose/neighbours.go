package diagnose

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/cpuwhy/cpuwhy/internal/container"
	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/verdict"
)

// Neighbour is another process of the host at one end of the window:
// what it has run, and at the end, for those that ran in the window,
// where it may run and which container it is in. They are who took the
// CPU when the target waited for it (starved).
type Neighbour struct {
	Stat proc.Stat
	// Allowed are its CPUs and Container its container ("docker
	// 0247046d3c16"; "" on the host), read at the end of the window for
	// the processes that ran in it.
	Allowed   []int
	Container string
}

// maxNeighbourDetails caps the processes whose CPUs and cgroup are read
// at the end of a window: the busiest are the ones named.
const maxNeighbourDetails = 4096

// readNeighbours scans every process (kernel threads too: ksoftirqd and
// kworkers take CPUs as well) and, given the previous scan, reads the
// CPUs and container of those that ran since.
func readNeighbours(sc *proc.Scanner, fs proc.FS, prev []Neighbour) []Neighbour {
	snap, err := sc.Scan(proc.ScanOptions{KernelThreads: true})
	if err != nil {
		return nil
	}
	before := map[int]proc.Stat{}
	for _, n := range prev {
		before[n.Stat.PID] = n.Stat
	}
	out := make([]Neighbour, 0, len(snap.Processes))
	details := 0
	for _, p := range snap.Processes {
		n := Neighbour{Stat: p.Stat}
		if b, ok := before[p.PID]; prev != nil && details < maxNeighbourDetails && (!ok || b.StartTime != p.StartTime || b.UTime+b.STime != p.UTime+p.STime) {
			details++
			n.Allowed, _ = fs.AllowedCPUs(p.PID)
			if cg, err := fs.ReadCapped(64<<10, fmt.Sprint(p.PID), "cgroup"); err == nil {
				if info, err := container.ParseCgroup(cg); err == nil && info != nil {
					id := info.ID
					if len(id) > 12 {
						id = id[:12]
					}
					n.Container = string(info.Runtime) + " " + id
				}
			}
		}
		out = append(out, n)
	}
	return out
}

// maxNeighbours is how many of the busiest neighbours a report names.
const maxNeighbours = 5

// neighbourWindow returns the processes other than pid that used CPU over
// the window and may run on a CPU of allowed (any, when allowed is
// unknown), the busiest first, at most maxNeighbours, with their CPU in
// percent of one core; and the busiest kernel threads, wherever they ran.
func neighbourWindow(n0, n1 []Neighbour, seconds float64, pid int, allowed []int) (neighbours, kernel []verdict.Neighbour) {
	if seconds <= 0 || len(n0) == 0 {
		return nil, nil
	}
	before := map[int]proc.Stat{}
	for _, n := range n0 {
		before[n.Stat.PID] = n.Stat
	}
	var out []verdict.Neighbour
	for _, n := range n1 {
		b, ok := before[n.Stat.PID]
		if n.Stat.PID == pid || !ok || b.StartTime != n.Stat.StartTime {
			continue
		}
		ticks := (n.Stat.UTime + n.Stat.STime) - min(b.UTime+b.STime, n.Stat.UTime+n.Stat.STime)
		c := round1(100 * float64(ticks) / proc.TicksPerSecond / seconds)
		if c < 1 {
			continue
		}
		if n.Stat.KernelThread() {
			kernel = append(kernel, verdict.Neighbour{PID: n.Stat.PID, Name: n.Stat.Comm, CPU: c, Shared: c, Kernel: true, Nice: n.Stat.Nice, Allowed: n.Allowed})
		}
		if !overlap(n.Allowed, allowed) {
			continue
		}
		// /proc says how much it ran, not on which CPU: a process
		// that may run on CPUs the target may not is counted there in
		// proportion (an estimate, which the evidence says).
		shared := c
		if len(n.Allowed) > 0 && len(allowed) > 0 {
			m := 0
			for _, cpu := range n.Allowed {
				if slices.Contains(allowed, cpu) {
					m++
				}
			}
			shared = round1(c * float64(m) / float64(len(n.Allowed)))
		}
		out = append(out, verdict.Neighbour{PID: n.Stat.PID, Name: n.Stat.Comm, CPU: c, Shared: shared, Container: n.Container,
			Kernel: n.Stat.KernelThread(), Nice: n.Stat.Nice, Allowed: n.Allowed})
	}
	busiest := func(a, b verdict.Neighbour) int {
		return cmp.Or(cmp.Compare(b.Shared, a.Shared), cmp.Compare(a.PID, b.PID))
	}
	slices.SortStableFunc(out, busiest)
	slices.SortStableFunc(kernel, busiest)
	return out[:min(len(out), maxNeighbours)], kernel[:min(len(kernel), maxNeighbours)]
}

// overlap reports whether two CPU lists share a CPU; an unknown list (nil)
// overlaps any.
func overlap(a, b []int) bool {
	if a == nil || b == nil {
		return true
	}
	for _, c := range a {
		if slices.Contains(b, c) {
			return true
		}
	}
	return false
}
