package verdict

import (
	"fmt"
	"strings"
)

// softirq: the kernel spent the CPUs the target may use in interrupts
// and softirqs (received packets, timers, block I/O completions, RCU), in
// the interrupt context /proc/stat counts apart from any task's time, or
// in the ksoftirqd threads that take over when they pile up. Which
// softirq, from /proc/softirqs over the window, says what drives it.
//
// Thresholds: irq and softirq time SoftirqShare or more of the time of
// the target's CPUs, and the target wanting HotThreadCPU (rules.go) or
// more of a core.

// SoftirqShare is the irq and softirq time, in part of the CPUs' time, at
// which interrupts take a CPU from its tasks: an idle machine spends well
// under 1% there and a busy web server a few percent; a packet flood or
// an interrupt storm takes tens of percent.
const SoftirqShare = 0.10

func softirq(o *Observation) (*Verdict, []int) {
	// A kernel thread's verdict says what softirqs ran on its CPU.
	if o.Host == nil || o.Kernel || wants(o) < HotThreadCPU {
		return nil, nil
	}
	modes := o.Host.allowedModes()
	if len(modes) == 0 {
		return nil, nil
	}
	var total float64
	var per []string
	for _, m := range modes {
		total += m.SoftIRQ + m.IRQ
		per = append(per, fmt.Sprintf("CPU %d %.0f%% (softirq %.0f, irq %.0f)", m.CPU, m.SoftIRQ+m.IRQ, m.SoftIRQ, m.IRQ))
	}
	avg := total / float64(len(modes))
	if avg < 100*SoftirqShare {
		return nil, nil
	}
	v := processVerdict(Softirq, o)
	top := "softirqs"
	if len(o.Host.Softirqs) > 0 {
		top = o.Host.Softirqs[0].Name + " softirqs"
	}
	v.Summary = fmt.Sprintf("the kernel spent %.0f%% of the time of the CPUs the process may use in interrupts and softirqs, mostly %s: the kernel's work for the machine's traffic, devices and timers, done on these CPUs whichever task it interrupted", avg, top)
	v.Evidence = []string{"interrupt time over the window: " + strings.Join(per, ", ")}
	if line := softirqRates(o.Host); line != "" {
		v.Evidence = append(v.Evidence, line)
	}
	if line := kernelThreadsLine(o); line != "" {
		v.Evidence = append(v.Evidence, line)
	}
	v.Evidence = append(v.Evidence, fmt.Sprintf("the process wanted %.1f%% of a core and ran %.1f%%", wants(o), o.CPU.Total+o.Children))
	v.Advice = softirqAdvice(o.Host)
	return v, nil
}

// softirqRates says which softirqs ran, how often and on which CPUs: the
// three most frequent.
func softirqRates(h *Host) string {
	var parts []string
	for i, r := range h.Softirqs {
		if i == 3 {
			break
		}
		var cpus []string
		for j, n := range r.PerCPU {
			if n >= 0.1*r.PerSecond && j < len(r.CPUs) {
				cpus = append(cpus, fmt.Sprintf("CPU %d %s", r.CPUs[j], rate(n)))
			}
		}
		parts = append(parts, fmt.Sprintf("%s %s (%s)", r.Name, rate(r.PerSecond), strings.Join(cpus, ", ")))
	}
	if len(parts) == 0 {
		return ""
	}
	return "softirqs run: " + strings.Join(parts, "; ")
}

// kernelThreadsLine names the busiest kernel threads of the window.
func kernelThreadsLine(o *Observation) string {
	var parts []string
	for _, k := range o.KernelThreads {
		parts = append(parts, fmt.Sprintf("%s (PID %d) %.1f%% of a core", k.Name, k.PID, k.CPU))
	}
	if len(parts) == 0 {
		return ""
	}
	return "busiest kernel threads: " + strings.Join(parts, ", ")
}

func softirqAdvice(h *Host) string {
	name := ""
	if len(h.Softirqs) > 0 {
		name = h.Softirqs[0].Name
	}
	switch name {
	case "NET_RX", "NET_TX":
		return "the network stack takes the CPU: find the traffic (a flood, a retry storm, a chatty peer) and cut it, or spread it: RSS/RPS across more CPUs (/sys/class/net/*/queues/rx-*/rps_cpus), interrupt affinity away from the process's CPUs, GRO and interrupt coalescing (ethtool -C) to take packets in batches"
	case "TIMER", "HRTIMER":
		return "timers take the CPU: look for programs arming very short timers (cpuwhy on them shows timer_storm), and for a high CONFIG_HZ or nohz disabled"
	case "BLOCK":
		return "block I/O completions take the CPU: look for small synchronous I/O at a high rate, and spread the device's interrupts (irqbalance, blk-mq queues)"
	case "RCU":
		return "RCU callbacks take the CPU: something frees kernel objects at a high rate (short-lived sockets, files, processes); find who creates them"
	}
	return "find what raises the interrupts (/proc/interrupts by device, /proc/softirqs by type) and spread them away from the process's CPUs (irqbalance, /proc/irq/N/smp_affinity)"
}
