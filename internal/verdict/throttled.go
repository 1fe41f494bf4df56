package verdict

import (
	"fmt"
	"strings"
)

// throttled: the CPU limit of the target's cgroup, or of an ancestor's (a
// Kubernetes pod's limit sits on the pod, above its containers), stopped
// it: the kernel's CFS bandwidth control lets a group use Quota of CPU
// per Period, then takes its threads off the CPU until the next period.
// A throttled thread does not wait on a run queue, so neither its CPU nor
// its run-queue delay shows the want: only the group's cpu.stat does.
// Judged whatever the process's CPU: a process capped at a twentieth of a
// core is below BusyCPU, and is still slow for it.
//
// Thresholds: the group with a limit that was throttled in the largest
// share of its periods is judged: ThrottledShare or more of the periods in
// which it had threads to run, and ThrottledRate or more throttled
// periods a second.

// CgroupCPU is one of the target's cgroups over the window: its own
// (Depth 0) or an ancestor.
type CgroupCPU struct {
	Path    string `json:"path"`
	Depth   int    `json:"depth"`
	Version int    `json:"version"`
	// Limit is the quota in cores (quota per period); 0: none.
	Limit    float64 `json:"limit_cores"`
	PeriodMs float64 `json:"period_ms"`
	// Periods and Throttled count, over the window, the periods in which
	// the group had threads to run and those in which it was throttled;
	// ThrottledSeconds the time its run queues were throttled, summed
	// over CPUs.
	Periods          float64 `json:"periods"`
	Throttled        float64 `json:"throttled_periods"`
	ThrottledSeconds float64 `json:"throttled_s"`
	// Usage is the group's CPU over the window in percent of one core;
	// -1 when its hierarchy does not account it.
	Usage float64 `json:"usage"`
	// Shares is its weight against its siblings: v1 cpu.shares (default
	// 1024), v2 cpu.weight (default 100); 0 when not read.
	Shares uint64 `json:"shares,omitempty"`
}

const (
	// ThrottledShare is the part of a group's periods it must have been
	// throttled in: the Kubernetes monitoring mixin's CPUThrottlingHigh
	// alert fires at 25%; below it, a limit that bites now and then is
	// how limits are meant to work.
	ThrottledShare = 0.25

	// ThrottledRate is the throttled periods a second below which the
	// share means little: a group that ran a few periods in the window
	// (a process waking now and then) reaches any share by chance. With
	// the default period of 100 ms a group running all the time has ten
	// periods a second.
	ThrottledRate = 1.0

	// BurstUsage is the part of its limit under which a throttled group's
	// average usage says it was stopped in bursts (its threads together
	// needed more than the quota within one period), not by its average.
	BurstUsage = 0.8
)

// throttledLevel returns the cgroup with a limit throttled in the largest
// share of its periods, nil when none has a limit.
func throttledLevel(o *Observation) *CgroupCPU {
	var best *CgroupCPU
	for i := range o.Cgroups {
		c := &o.Cgroups[i]
		if c.Limit <= 0 {
			continue
		}
		if best == nil || c.share() > best.share() {
			best = c
		}
	}
	return best
}

func (c *CgroupCPU) share() float64 {
	if c.Periods <= 0 {
		return 0
	}
	return c.Throttled / c.Periods
}

// whose names the cgroup by its place above the target.
func (c *CgroupCPU) whose() string {
	switch c.Depth {
	case 0:
		return fmt.Sprintf("its cgroup %s", c.Path)
	case 1:
		return fmt.Sprintf("the parent of its cgroup, %s (a limit above the target's own cgroup, as a Kubernetes pod's is)", c.Path)
	}
	return fmt.Sprintf("an ancestor of its cgroup %d levels up, %s", c.Depth, c.Path)
}

func throttled(o *Observation) (*Verdict, []int) {
	c := throttledLevel(o)
	if c == nil || c.share() < ThrottledShare || c.Throttled/o.Seconds < ThrottledRate {
		return nil, nil
	}
	v := processVerdict(Throttled, o)
	v.Summary = fmt.Sprintf("the CPU limit of %s, %.2f cores, stopped the process in %.0f%% of the periods it ran: it wants more CPU than the limit gives, and waits off the CPU until the next period",
		c.whose(), c.Limit, 100*c.share())
	ev := []string{
		fmt.Sprintf("cgroup %s (v%d): a quota of %.1f ms of CPU every %.0f ms period, %.2f cores", c.Path, c.Version, c.Limit*c.PeriodMs, c.PeriodMs, c.Limit),
		fmt.Sprintf("throttled in %.0f%% of its periods (%.1f of %.1f a second), %.2f s throttled per second of the window (summed over its CPUs)",
			100*c.share(), c.Throttled/o.Seconds, c.Periods/o.Seconds, c.ThrottledSeconds/o.Seconds),
	}
	burst := false
	if c.Usage >= 0 {
		used := c.Usage / (100 * c.Limit)
		line := fmt.Sprintf("the cgroup used %.1f%% of a core, %.0f%% of its limit; the target %.1f%%", c.Usage, 100*used, o.CPU.Total+o.Children)
		if used < BurstUsage {
			burst = true
			line += fmt.Sprintf(": below the limit on average, so it is stopped in bursts, when its threads together need more than %.1f ms within one %.0f ms period", c.Limit*c.PeriodMs, c.PeriodMs)
		}
		ev = append(ev, line)
	} else {
		ev = append(ev, fmt.Sprintf("the target used %.1f%% of a core, %.0f%% of the limit (the cgroup's own usage is not accounted in its hierarchy: the target's is a lower bound of it)",
			o.CPU.Total+o.Children, (o.CPU.Total+o.Children)/c.Limit))
	}
	for i := range o.Threads {
		if t := &o.Threads[i]; t.Exited == 0 && t.Demand >= t.CPU.Total+10 {
			ev = append(ev, "the time its threads \"waited for a CPU\" in the lines above is mostly this: a throttled thread stays runnable, off the CPU until the next period")
			break
		}
	}
	var others []string
	for i := range o.Cgroups {
		if oc := &o.Cgroups[i]; oc != c && oc.Limit > 0 {
			others = append(others, fmt.Sprintf("%s %.2f cores, throttled in %.0f%% of its periods", oc.Path, oc.Limit, 100*oc.share()))
		}
	}
	if len(others) > 0 {
		ev = append(ev, "other limits above the target: "+strings.Join(others, "; "))
	}
	v.Evidence = ev
	v.Advice = "raise the limit (docker --cpus, Kubernetes resources.limits.cpu, cpu.max on cgroup v2, cpu.cfs_quota_us on v1) or make the process need less CPU (the other verdicts say where it goes)"
	if burst {
		v.Advice += "; for bursts, fewer threads running at once, a longer period, or cpu.max.burst (cpu.cfs_burst_us) let them through, or drop the limit and keep a weight (requests, shares)"
	}
	return v, nil
}

// processVerdict fills what a verdict on the whole process says: its CPU
// (with the children it waited for) and its hottest thread.
func processVerdict(p Pattern, o *Observation) *Verdict {
	v := &Verdict{Pattern: p, CPU: round1(o.CPU.Total + o.Children), CPUOf: CPUOfProcess}
	if len(o.Threads) > 0 {
		t := &o.Threads[0]
		v.Thread = ThreadRef{TID: t.TID, Name: t.Name}
		v.ThreadCPU = round1(t.CPU.Total)
		if len(t.Stacks) > 0 {
			v.Stack = t.Stacks[0].Frames
		}
	}
	return v
}
