package verdict

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/cpuwhy/cpuwhy/internal/syscalls"
)

// healthy: nothing wrong. Either the process uses too little CPU for
// anything to be wrong enough to judge (below BusyCPU, itself plus its
// waited-for children), or it is busy and no other rule holds: the
// verdict there always is, last in the registry.

// BusyCPU is the process CPU (itself plus waited-for children, in
// percent of one core) below which nothing is wrong enough to judge:
// a tenth of a core is what a busy daemon's housekeeping costs.
const BusyCPU = 10.0

func idle(o *Observation) Verdict {
	// The verdict is about the process: its CPU, as busy() measures it.
	v := Verdict{Pattern: Healthy, CPU: round1(o.CPU.Total + o.Children), CPUOf: CPUOfProcess}
	if len(o.Threads) > 0 {
		v.Thread = ThreadRef{TID: o.Threads[0].TID, Name: o.Threads[0].Name}
		v.ThreadCPU = round1(o.Threads[0].CPU.Total)
		if len(o.Threads[0].Stacks) > 0 {
			v.Stack = o.Threads[0].Stacks[0].Frames
		}
	}
	v.Summary = fmt.Sprintf("process %s is not burning CPU: %.1f%% of a core over %.1f s", o.Name, v.CPU, o.Seconds)
	v.Evidence = []string{fmt.Sprintf("below %.0f%% of a core, the cost of a daemon's housekeeping", BusyCPU)}
	v.Advice = "nothing to fix here; if the CPU comes in bursts, run cpuwhy while it burns (-d for a longer window)"
	return v
}

func busyHealthy(o *Observation) Verdict {
	v := idle(o)
	v.Summary = fmt.Sprintf("process %s is busy doing real work: %.1f%% of a core, with no sign of a loop that spins for nothing", o.Name, v.CPU)
	v.Evidence = nil
	if o.NoSyscalls {
		// Nothing is known of its syscalls: say nothing of them.
		v.Summary = fmt.Sprintf("process %s is busy (%.1f%% of a core), and without its syscalls cpuwhy cannot tell a loop from real work", o.Name, v.CPU)
	} else {
		var calls, ok uint64
		for i := range o.Threads {
			for _, s := range o.Threads[i].Syscalls {
				calls += s.Count
				ok += s.OK
			}
		}
		v.Evidence = append(v.Evidence, fmt.Sprintf("%s syscalls, %.0f%% of them successful", rate(float64(calls)/o.Seconds), pct(float64(ok), float64(calls))),
			fruitlessLine(o))
	}
	if len(o.Threads) > 0 {
		v.Evidence = append(v.Evidence, cpuLine(&o.Threads[0]))
		v.Evidence = append(v.Evidence, stackLine(&o.Threads[0])...)
	}
	v.Advice = "if this load is more than expected, look at what drives it (requests per second, clients); `cpuwhy record` gives a flame graph of where the work goes"
	return v
}

// fruitless is one thread's calls of one syscall that got nothing done:
// those failing with one errno, a poll that found nothing, a yield.
type fruitless struct {
	t    *Thread
	s    *syscalls.Syscall
	what string // "EAGAIN", "returned 0", ""
	n    uint64
}

// mostFruitless returns the thread's-eye view the loop rules take: the
// fruitless calls of one thread and one syscall with the highest count,
// over every thread. The report's tables show the same calls per thread.
func mostFruitless(o *Observation) (best fruitless) {
	for i := range o.Threads {
		t := &o.Threads[i]
		for j := range t.Syscalls {
			s := &t.Syscalls[j]
			errs := slices.Sorted(maps.Keys(s.Errors))
			cands := make([]fruitless, 0, len(errs)+1)
			for _, e := range errs {
				cands = append(cands, fruitless{t, s, e, s.Errors[e]})
			}
			if slices.Contains(syscalls.PollCalls, s.Name) {
				cands = append(cands, fruitless{t, s, "returned 0", s.Zero})
			}
			if s.Name == "sched_yield" {
				cands = append(cands, fruitless{t, s, "", s.Count})
			}
			for _, c := range cands {
				if c.n > best.n {
					best = c
				}
			}
		}
	}
	return best
}

// fruitlessLine says whether any thread repeated a fruitless call at
// LoopRate or more, and if one did, why no loop rule held: a sentence
// true of the thread table beside it.
func fruitlessLine(o *Observation) string {
	f := mostFruitless(o)
	r := float64(f.n) / o.Seconds
	if f.t == nil || r < LoopRate {
		return fmt.Sprintf("no thread repeated a fruitless call (an error, a poll that found nothing, a yield) at %s or more", rate(LoopRate))
	}
	call := strings.TrimSpace(f.s.Name + " " + f.what)
	share := pct(float64(f.n), float64(f.t.calls()))
	if f.t.load() < HotThreadCPU {
		return fmt.Sprintf("thread %s (TID %d) repeated %s at %s (%.0f%% of its calls), but used %.1f%% of a core, below the %.0f%% at which a thread's loops are judged",
			f.t.Name, f.t.TID, call, rate(r), share, f.t.CPU.Total, HotThreadCPU)
	}
	// Which rule would have named it, and the part of the calls it asks.
	need := fmt.Sprintf("%.0f%% of the thread's calls", 100*LoopShare)
	switch {
	case f.what == "EAGAIN":
		need = "busy_poll asks " + need
	case f.what == "returned 0":
		need = "zero_timeout_poll asks " + need
	case f.what == "":
		need = "a yield loop asks " + need
	default:
		need = fmt.Sprintf("error_loop asks %.0f%% of the thread's calls and %.0f%% of the syscall's", 100*LoopShare/2, 100*ErrorShare)
	}
	return fmt.Sprintf("thread %s (TID %d) repeated %s at %s: %.0f%% of its calls, %.0f%% of its %s calls (%s)",
		f.t.Name, f.t.TID, call, rate(r), share, pct(float64(f.n), float64(f.s.Count)), f.s.Name, need)
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
