package verdict

import "fmt"

// lock_contention: threads handing a lock over through the kernel (futex
// wait and wake) so often that doing so is their work. It is judged on the
// process: it takes several threads.
//
// Thresholds: the threads whose futex calls are LockShare or more of their
// calls are the contenders; there must be two or more, making LockRate or
// more futex calls between them, and using HotThreadCPU or more between
// them (rules.go).

const (
	// LockRate is the rate of futex calls, all the contenders together,
	// above which threads spend their time handing a lock over rather
	// than working: an uncontended mutex makes no futex call at all, and a
	// healthy pool of workers waking for jobs makes hundreds.
	LockRate = 10000.0

	// LockShare is the part of a thread's calls its futex calls must be
	// for it to be one of the contenders: a thread that mostly does other
	// calls (I/O, then a lock around its bookkeeping) is paced by them.
	LockShare = 0.5
)

func lockContention(o *Observation) (*Verdict, []int) {
	var futex, calls uint64
	var cpu float64
	var tids []int
	var top *Thread
	var topN uint64
	errs := map[string]uint64{}
	for i := range o.Threads {
		t := &o.Threads[i]
		s := t.syscall("futex")
		if s == nil || float64(s.Count) < LockShare*float64(t.calls()) {
			continue
		}
		futex += s.Count
		calls += t.calls()
		cpu += t.CPU.Total
		tids = append(tids, t.TID)
		for e, n := range s.Errors {
			errs[e] += n
		}
		if s.Count > topN {
			top, topN = t, s.Count
		}
	}
	if len(tids) < 2 || float64(futex)/o.Seconds < LockRate || cpu < HotThreadCPU {
		return nil, nil
	}
	v := newVerdict(LockContention, top)
	v.CPU, v.CPUOf = round1(cpu), CPUOfThreads
	v.Syscall = str("futex")
	v.Summary = fmt.Sprintf("%d threads contend for a lock: they hand it over through the kernel %s (futex wait/wake), and spend their CPU doing so",
		len(tids), rate(float64(futex)/o.Seconds))
	ev := fmt.Sprintf("futex called %s by %d threads (%.0f%% of their calls), %.1f%% of a core between them", rate(float64(futex)/o.Seconds), len(tids), pct(float64(futex), float64(calls)), cpu)
	if n := errs["EAGAIN"]; n > 0 {
		ev += fmt.Sprintf("; %.0f%% of the waits found the lock already released (EAGAIN)", pct(float64(n), float64(futex)))
	}
	v.Evidence = append([]string{ev}, stackLine(top)...)
	v.Advice = "hold the lock for less time or less often: move work out of the critical section, shard the data behind several locks, batch items per acquisition, or use per-thread state and merge"
	return v, tids
}
