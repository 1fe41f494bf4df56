package verdict

import (
	"fmt"
	"strings"
)

// steal: the hypervisor ran something else on the CPUs the target may
// use: a virtual machine's CPU is a thread on its host, and a host that
// sells more CPUs than it has (a VPS) takes them back, which the guest
// sees as steal time in /proc/stat. The target's figures are then what it
// got of what was left; nothing in the guest can fix it.
//
// Thresholds: steal StealShare or more of the time of the target's CPUs
// (all of them when its affinity is unknown), and the target wanting
// HotThreadCPU (rules.go) or more of a core, so that the steal mattered
// to it.

// StealShare is the steal, in part of the CPUs' time, at which a host is
// oversold: cloud guidance (AWS, Google) calls sustained steal over 10%
// a problem to take to the provider; a few percent is the noise of a
// shared host.
const StealShare = 0.10

// wants is what the process asked of the CPU over the window, in percent
// of a core: what its live threads ran or waited to run, or its CPU when
// that is more (demand unknown).
func wants(o *Observation) float64 {
	var d float64
	for i := range o.Threads {
		t := &o.Threads[i]
		if t.Exited == 0 {
			d += t.load()
		}
	}
	return max(d, o.CPU.Total+o.Children)
}

func steal(o *Observation) (*Verdict, []int) {
	if o.Host == nil || wants(o) < HotThreadCPU {
		return nil, nil
	}
	modes := o.Host.allowedModes()
	if len(modes) == 0 {
		return nil, nil
	}
	var total float64
	var per []string
	for _, m := range modes {
		total += m.Steal
		per = append(per, fmt.Sprintf("CPU %d %.0f%%", m.CPU, m.Steal))
	}
	avg := total / float64(len(modes))
	if avg < 100*StealShare {
		return nil, nil
	}
	v := processVerdict(Steal, o)
	v.Summary = fmt.Sprintf("the hypervisor took %.0f%% of the time of the CPUs the process may use: this virtual machine's host ran other guests on them, so the process got less CPU than this machine seems to have", avg)
	v.Evidence = []string{
		fmt.Sprintf("steal time over the window: %s (%.2f cores of %d stolen from the whole machine)", strings.Join(per, ", "), o.Host.All.Steal/100*float64(o.Host.CPUs), o.Host.CPUs),
		fmt.Sprintf("the process wanted %.1f%% of a core and ran %.1f%%", wants(o), o.CPU.Total+o.Children),
	}
	v.Advice = "nothing in this machine fixes steal: its host is oversold. Move to a dedicated-CPU (or larger, less shared) instance or another provider, or ask the provider; measure it over a longer window (cpuwhy -d 1m) to show them"
	return v, nil
}
