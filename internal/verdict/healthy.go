package verdict

import "fmt"

// healthy: nothing wrong. Either the process uses too little CPU for
// anything to be wrong enough to judge (below BusyCPU, itself plus its
// waited-for children), or it is busy and no other rule holds: the
// verdict there always is, last in the registry.

// BusyCPU is the process CPU (itself plus waited-for children, in
// percent of one core) below which nothing is wrong enough to judge:
// a tenth of a core is what a busy daemon's housekeeping costs.
const BusyCPU = 10.0

func idle(o *Observation) Verdict {
	v := Verdict{Pattern: Healthy, CPU: round1(o.CPU.Total)}
	if len(o.Threads) > 0 {
		v.Thread = ThreadRef{TID: o.Threads[0].TID, Name: o.Threads[0].Name}
		if len(o.Threads[0].Stacks) > 0 {
			v.Stack = o.Threads[0].Stacks[0].Frames
		}
	}
	v.Summary = fmt.Sprintf("process %s is not burning CPU: %.1f%% of a core over %.1f s", o.Name, o.CPU.Total+o.Children, o.Seconds)
	v.Evidence = []string{fmt.Sprintf("below %.0f%% of a core, the cost of a daemon's housekeeping", BusyCPU)}
	v.Advice = "nothing to fix here; if the CPU comes in bursts, run cpuwhy while it burns (-d for a longer window)"
	return v
}

func busyHealthy(o *Observation) Verdict {
	v := idle(o)
	v.CPU = round1(o.CPU.Total + o.Children)
	var calls, ok uint64
	for i := range o.Threads {
		for _, s := range o.Threads[i].Syscalls {
			calls += s.Count
			ok += s.OK
		}
	}
	v.Summary = fmt.Sprintf("process %s is busy doing real work: %.1f%% of a core, with no sign of a loop that spins for nothing", o.Name, v.CPU)
	if o.NoSyscalls {
		v.Summary = fmt.Sprintf("process %s is busy (%.1f%% of a core), and without its syscalls cpuwhy cannot tell a loop from real work", o.Name, v.CPU)
	}
	v.Evidence = []string{fmt.Sprintf("%s syscalls, %.0f%% of them successful; no fruitless call repeated at %s or more", rate(float64(calls)/o.Seconds), pct(float64(ok), float64(calls)), rate(LoopRate))}
	if len(o.Threads) > 0 {
		v.Evidence = append(v.Evidence, cpuLine(&o.Threads[0]))
		v.Evidence = append(v.Evidence, stackLine(&o.Threads[0])...)
	}
	v.Advice = "if this load is more than expected, look at what drives it (requests per second, clients); `cpuwhy record` gives a flame graph of where the work goes"
	return v
}

// busy reports whether o used enough CPU for its patterns to be looked for.
func busy(o *Observation) bool { return o.CPU.Total+o.Children >= BusyCPU }

// healthy is the rule that always holds: idle below BusyCPU, busy with
// real work above it.
func healthy(o *Observation) (*Verdict, []int) {
	if !busy(o) {
		v := idle(o)
		return &v, nil
	}
	v := busyHealthy(o)
	return &v, nil
}
