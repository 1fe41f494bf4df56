package verdict

import (
	"fmt"
	"strings"
)

// starved: the target's threads wanted a CPU and waited for one, on a run
// queue behind other tasks, a large part of the time they wanted it: the
// run-queue delay of /proc/PID/task/TID/schedstat. Whatever its own code
// does, it gets less than it asks for; the verdict names who took the
// CPUs it may use (its affinity within its cpuset), by process, container
// and share, and its own weight. Judged whatever the process's CPU: a
// starved loop may get less than BusyCPU. Not judged when its cgroup's
// limit throttled it (throttled): a throttled thread counts as waiting
// in schedstat too, and the limit is then the cause.
//
// Thresholds: the threads together waited StarvedShare or more of the
// time they wanted a CPU (ran or waited), and HotThreadCPU (rules.go) or
// more of a core in all; and they ran less than 1-StarvedShare of the
// time of the CPUs they may use, so that others held StarvedShare or more
// of it: a process whose own threads outnumber its CPUs waits behind
// itself.

// Neighbour is another process that used the CPUs the target may use over
// the window.
type Neighbour struct {
	PID  int     `json:"pid"`
	Name string  `json:"name"`
	CPU  float64 `json:"cpu"` // percent of one core
	// Shared is the part of CPU on the target's CPUs: all of it when it
	// may run only there, else in proportion of its CPUs that are the
	// target's (an estimate: /proc does not say where it ran).
	Shared    float64 `json:"cpu_on_target_cpus"`
	Container string  `json:"container,omitempty"`
	Kernel    bool    `json:"kernel_thread,omitempty"`
	Nice      int     `json:"nice"`
	Allowed   []int   `json:"allowed_cpus,omitempty"`
}

// StarvedShare is the part of the time the threads wanted a CPU that they
// spent waiting for one. At 30% a thread runs at 70% of its speed or less
// for want of a CPU: more than any cost of a context switch or wakeup
// latency on an idle machine (a few percent), and less than the 44% the
// issue's four lock-holding threads waited on a loaded two-core machine,
// which was called healthy.
const StarvedShare = 0.3

func starved(o *Observation) (*Verdict, []int) {
	var ran, wanted float64
	n := 0
	for i := range o.Threads {
		t := &o.Threads[i]
		if t.Exited > 0 || t.Demand <= 0 {
			continue
		}
		ran += t.CPU.Total
		wanted += max(t.Demand, t.CPU.Total)
		n++
	}
	waited := wanted - ran
	if wanted <= 0 || waited/wanted < StarvedShare || waited < HotThreadCPU {
		return nil, nil
	}
	// A process whose own threads fill the CPUs it may use waits
	// behind itself: more threads than CPUs, which its own verdicts
	// (a thread group, lock_contention) are about, not its neighbours.
	if o.Host != nil {
		if capacity := 100 * float64(len(o.Host.allowedModes())); capacity > 0 && ran >= (1-StarvedShare)*capacity {
			return nil, nil
		}
	}
	if c := throttledLevel(o); c != nil && c.share() >= ThrottledShare && c.Throttled/o.Seconds >= ThrottledRate {
		return nil, nil // the wait is the limit's: throttled says so
	}
	v := processVerdict(Starved, o)
	cpus := "the host's CPUs"
	var modes []HostModes
	if h := o.Host; h != nil {
		modes = h.allowedModes()
		if len(h.Allowed) > 0 && len(h.Allowed) < h.CPUs {
			cpus = "CPU " + cpuList(h.Allowed)
		}
	}
	v.Summary = fmt.Sprintf("the process waited for a CPU %.0f%% of the time it wanted one: other tasks held %s, so it ran %.1f%% of a core of the %.1f%% it asked for",
		100*waited/wanted, cpus, ran, wanted)
	who := "its thread"
	if n > 1 {
		who = fmt.Sprintf("its %d threads", n)
	}
	ev := []string{fmt.Sprintf("%s ran %.1f%% of a core and waited on a run queue %.1f%% of a core more (run-queue delay from schedstat)", who, ran, waited)}
	if len(modes) > 0 {
		var busy, user, system, soft, steal float64
		for _, m := range modes {
			busy += m.Busy()
			user += m.User
			system += m.System
			soft += m.SoftIRQ + m.IRQ
			steal += m.Steal
		}
		k := float64(len(modes))
		ev = append(ev, fmt.Sprintf("it may run on %s (its affinity within its cpuset), %.0f%% busy over the window: user %.0f, system %.0f, irq and softirq %.0f, steal %.0f",
			cpus, busy/k, user/k, system/k, soft/k, steal/k))
	}
	if len(o.Neighbours) > 0 {
		var names []string
		capacity := 100.0
		if o.Host != nil {
			capacity = 100 * float64(max(1, len(o.Host.allowedModes())))
		}
		for _, nb := range o.Neighbours {
			where := "on the host"
			if nb.Container != "" {
				where = "in " + nb.Container
			}
			if nb.Kernel {
				where = "a kernel thread"
			}
			line := fmt.Sprintf("%s (PID %d, %s, nice %d) %.1f%% of a core", nb.Name, nb.PID, where, nb.Nice, nb.CPU)
			if nb.Shared < nb.CPU {
				line += fmt.Sprintf(" on CPUs %s, about %.1f%% on the target's", cpuList(nb.Allowed), nb.Shared)
			}
			names = append(names, line+fmt.Sprintf(", %.0f%% of those CPUs", 100*nb.Shared/capacity))
		}
		ev = append(ev, "who else ran there: "+strings.Join(names, "; "))
	}
	w := fmt.Sprintf("its weight: nice %d", o.Nice)
	if len(o.Cgroups) > 0 && o.Cgroups[0].Shares > 0 {
		c := o.Cgroups[0]
		knob, def := "cpu.shares", 1024
		if c.Version == 2 {
			knob, def = "cpu.weight", 100
		}
		w += fmt.Sprintf("; its cgroup %s has %s %d (default %d)", c.Path, knob, c.Shares, def)
	}
	ev = append(ev, w)
	v.Evidence = ev
	v.Advice = "give it the CPU it waits for: more CPUs in its affinity or cpuset, or fewer neighbours there (move them to other CPUs, stop or limit them); or weigh it above them (a lower nice, a higher cpu.weight or cpu.shares for its cgroup, Kubernetes requests)"
	return v, nil
}

// cpuList writes CPUs as the kernel does: 0-3,8.
func cpuList(cpus []int) string {
	var parts []string
	for i := 0; i < len(cpus); {
		j := i
		for j+1 < len(cpus) && cpus[j+1] == cpus[j]+1 {
			j++
		}
		if j > i {
			parts = append(parts, fmt.Sprintf("%d-%d", cpus[i], cpus[j]))
		} else {
			parts = append(parts, fmt.Sprint(cpus[i]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}
