package verdict

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// gil_contention: several Python threads want to run Python code, but
// the interpreter's global lock (the GIL) lets one at a time: they take
// turns, each blocked while another holds it, and together they get no
// more than one core whatever the machine has. py-spy's --gil view.
//
// The thread named as holding it is the one the GIL's own state (its
// last_holder while locked, read from the interpreter's memory at each
// sample: Observation.GIL) shows held it most over the window, a
// contender or not (a thread that blocks in C code without releasing it
// uses no CPU); where the state could not be read, the busiest
// contender, and the verdict says so.
//
// Thresholds: the contenders are the threads that run Python
// (InterpretedShare of their samples, interpreted.go) and use
// GILThreadCPU or more of a core, block GILBlocked or more of the
// window, and make GILFutexRate or more futex calls a second. There must
// be two or more, using HotThreadCPU or more (rules.go) and at most
// GILMaxCPU between them.

const (
	// GILThreadCPU is the CPU a Python thread must use to be one of the
	// contenders: it gets the GIL and runs with it. A thread blocked on
	// I/O or a queue the whole window uses next to nothing.
	GILThreadCPU = 5.0

	// GILBlocked is the part of the window a contender must spend
	// blocked (neither running nor waiting for a CPU): a thread waiting
	// for the GIL sleeps on its condition variable. Two threads sharing
	// it block about half the window each, four about three quarters; a
	// fifth leaves room for threads that also run C code without it.
	GILBlocked = 20.0

	// GILFutexRate is the rate of futex calls a contender must make: a
	// thread waiting for the GIL wakes every switch interval (5 ms) to ask
	// for it, and the holder hands it over, a few hundred calls a second
	// each; a thread blocked on a lock or queue for a long wait makes a
	// few.
	GILFutexRate = 50.0

	// GILMaxCPU is what the contenders may use together: one core runs
	// Python at a time, and C code that releases the GIL (I/O, numpy)
	// adds some; a third of a core more says the threads run in parallel
	// and are not held back by the GIL.
	GILMaxCPU = 130.0
)

func gilContention(o *Observation) (*Verdict, []int) {
	var contenders []*Thread
	var cpu float64
	for i := range o.Threads {
		t := &o.Threads[i]
		if t.Exited > 0 || t.Demand <= 0 || t.CPU.Total < GILThreadCPU || 100-t.Demand < GILBlocked || t.interpreted() != "Python" {
			continue
		}
		s := t.syscall("futex")
		if s == nil || float64(s.Count)/o.Seconds < GILFutexRate {
			continue
		}
		contenders = append(contenders, t)
		cpu += t.CPU.Total
	}
	if len(contenders) < 2 || cpu < HotThreadCPU || cpu > GILMaxCPU {
		return nil, nil
	}
	slices.SortStableFunc(contenders, func(a, b *Thread) int { return cmp.Compare(b.CPU.Total, a.CPU.Total) })
	holder, held := heldMost(o)
	if holder == nil {
		holder = contenders[0]
	}
	v := newVerdict(GILContention, holder)
	v.CPU, v.CPUOf = round1(cpu), CPUOfThreads
	v.Syscall = str("futex")
	at := func(t *Thread) string {
		if fns := interpretedFunctions(t); len(fns) > 0 {
			return " in " + fns[0].hottest.String()
		}
		return ""
	}
	minB, maxB := 100.0, 0.0
	var tids []int
	var starved []string
	for _, t := range contenders {
		b := 100 - t.Demand
		minB, maxB = min(minB, b), max(maxB, b)
		tids = append(tids, t.TID)
		if t != holder {
			starved = append(starved, fmt.Sprintf("%s (TID %d)", t.Name, t.TID))
		}
	}
	if !slices.Contains(tids, holder.TID) {
		tids = append(tids, holder.TID)
	}
	v.Summary = fmt.Sprintf("%d Python threads want the CPU but take turns on the GIL, the interpreter's lock that lets one run Python at a time: "+
		"together they ran %.0f%% of a core, each blocked %.0f-%.0f%% of the window waiting for it; %s (TID %d) held it most%s",
		len(contenders), cpu, minB, maxB, holder.Name, holder.TID, at(holder))
	v.Evidence = []string{fmt.Sprintf("the threads starved of the GIL: %s", strings.Join(starved, ", "))}
	if held != "" {
		v.Evidence = append(v.Evidence, held)
	} else {
		why := "no stack samples"
		if o.GIL != nil && o.GIL.Err != "" {
			why = o.GIL.Err
		}
		v.Evidence = append(v.Evidence, fmt.Sprintf("the GIL's own state could not be read (%s): the thread named as holding it is the busiest of those waiting for it", why))
	}
	for _, t := range contenders {
		f := t.syscall("futex")
		v.Evidence = append(v.Evidence, fmt.Sprintf("thread %s (TID %d) ran %.1f%% of a core%s, blocked %.0f%% of the window, %s futex calls (the GIL's hand-offs)",
			t.Name, t.TID, t.CPU.Total, at(t), 100-t.Demand, rate(float64(f.Count)/o.Seconds)))
	}
	v.Advice = "threads do not run Python code in parallel: move the CPU-bound work to processes (multiprocessing, concurrent.futures.ProcessPoolExecutor), " +
		"or into code that releases the GIL (numpy, a C extension, Cython with nogil), or run it on a free-threaded CPython 3.13t; " +
		"threads suit waiting on I/O, not computing"
	return v, tids
}

// GIL is the GIL's state read from the interpreter's memory at each
// sample: which thread held it, by TID (its last_holder while it was
// locked), or none.
type GIL struct {
	// EveryMS is the interval of a timer that read it, in ms; 0: read
	// at the samples.
	EveryMS  float64     `json:"every_ms,omitempty"`
	Readings int         `json:"readings"`        // samples (or ticks) with the state read
	Held     map[int]int `json:"held,omitempty"`  // of those, held by each thread
	Free     int         `json:"free"`            // of those, held by none
	Err      string      `json:"error,omitempty"` // why it was never read
}

// heldMost is the thread the GIL's state shows held it most, and the
// evidence line that says so; nil when the state was not read, or names
// no thread of the observation.
func heldMost(o *Observation) (*Thread, string) {
	g := o.GIL
	if g == nil || g.Readings == 0 {
		return nil, ""
	}
	type holder struct {
		t *Thread
		n int
	}
	var hs []holder
	for i := range o.Threads {
		t := &o.Threads[i]
		if n := g.Held[t.TID]; n > 0 && t.TID != 0 {
			hs = append(hs, holder{t, n})
		}
	}
	if len(hs) == 0 {
		return nil, ""
	}
	slices.SortFunc(hs, func(a, b holder) int { return cmp.Or(cmp.Compare(b.n, a.n), cmp.Compare(a.t.TID, b.t.TID)) })
	var parts []string
	for _, h := range hs[:min(len(hs), 4)] {
		parts = append(parts, fmt.Sprintf("%s (TID %d) %.0f%%", h.t.Name, h.t.TID, pct(float64(h.n), float64(g.Readings))))
	}
	if len(hs) > 4 {
		parts = append(parts, fmt.Sprintf("%d more threads", len(hs)-4))
	}
	at := fmt.Sprintf("at %d samples", g.Readings)
	if g.EveryMS > 0 {
		at = fmt.Sprintf("every %g ms (%d readings)", g.EveryMS, g.Readings)
	}
	line := fmt.Sprintf("the GIL, read from the interpreter %s, was held by %s; by none %.0f%%",
		at, strings.Join(parts, ", "), pct(float64(g.Free), float64(g.Readings)))
	return hs[0].t, line
}
