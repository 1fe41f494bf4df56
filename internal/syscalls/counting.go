package syscalls

import (
	"fmt"
	"math"
	"time"
)

// Counting every call costs the target: the kernel's syscall tracepoint,
// once anything is attached to it, sends every syscall of the host
// through its slow path, and the counting program runs in the target's
// own context at each of its calls. A thread polling a socket makes
// millions of calls a second; the hook alone (an empty program with the
// pid filter) then keeps only 73-81% of its rate on this project's VM
// (bench/syscallcost), which no work on the program can win back. So a
// tracer that can (package ebpf) counts every call for a first stretch of
// the window (CountProbe), and when the target made more than SampleAbove
// calls a second there, counts from then on only in slices of the window,
// detached between them, and scales the counts to the whole window.
// Options.Exact turns that off.
const (
	// SampleAbove is the call rate of the whole process, per second of
	// the window or, when it wanted ProbeBusy of a core or more in the
	// probe, per second of its CPU time, above which counts are sampled
	// (a thread given a third of its core by other tasks makes a third of
	// its calls a second, each costing as much). The hook costs 0.07 to
	// 0.1 µs a call here (a 3.7M calls/s poller keeps 73-81% of its
	// rate): 200,000 calls a second cost about 2% of a core, and a target
	// making thousands a second pays nothing measurable, counted exactly.
	SampleAbove = 200_000
	// SampledRate is about the rate at which calls are counted once
	// sampling: the share of the window counted is SampledRate over the
	// rate seen in CountProbe (at least MinCountShare), so the counting
	// costs the target about what 50,000 calls a second counted exactly
	// would, about half a percent of a core, however fast it calls. The
	// rate is the higher of the process's calls per second of the window
	// and per second of its CPU time: what counting costs a thread while
	// it runs follows its calls per second on a CPU, and one that shares
	// its core (with cpuwhy itself, on a one-core machine) makes fewer
	// per second of the window at the same cost per call.
	SampledRate = 50_000
	// MinCountShare is the least share of the window counted: a slice of
	// at least a 64th of every period (3 ms of 200), so that a slice holds
	// thousands of calls of a target this fast and the slices' attach and
	// detach, a few hundred microseconds, stay a small part of it.
	MinCountShare = 1.0 / 64
	// ProbeBusy is the CPU, in cores, the process must want over the
	// probe (run, or wait on a run queue: schedstat) for its calls per
	// second of CPU to count: half a core, a loop that never sleeps. A
	// process that mostly sleeps may make its few calls densely (a poller
	// paced to 20,000 calls a second made them at 700,000 to 1.5 million
	// per second of its CPU), and pays nothing that matters; one that
	// wants a core but gets a tenth of it, on a loaded machine, pays for
	// each call as much as alone. Not less: a process that wakes 100
	// times a second waits on a loaded machine's run queue after each
	// wake-up, and the paced poller wanted 10% of a core at load 9 while
	// running 1.3%.
	ProbeBusy = 0.5
	// CountProbe is the first stretch of the window, counted exactly,
	// whose rate decides; short, since a fast target pays the full
	// counting cost during it, and long enough to hold 10,000 calls of a
	// target at SampleAbove.
	CountProbe = 50 * time.Millisecond
)

// Counting says how a profile's calls were counted: every call, or in
// slices of the window, scaled. Its JSON form is part of the reports'
// (fields are only ever added).
type Counting struct {
	// Sampled says the calls were counted in slices of the window only:
	// every count of the report is then an estimate, the calls counted
	// times Scale, and every rate the rate while counted.
	Sampled bool `json:"sampled"`
	// ProbeRate is the process's calls per second over the first stretch
	// of the window, which decided; 0 when counting was forced exact.
	// ProbeRateCPU is the same calls per second of the process's CPU
	// time (0 when not read: a process of more than maxProbeThreads).
	ProbeRate    float64 `json:"probe_rate_per_s,omitempty"`
	ProbeRateCPU float64 `json:"probe_rate_per_cpu_s,omitempty"`
	// Probe is how long that stretch was: CountProbe, or more when the
	// target had run less than a few milliseconds by then.
	Probe float64 `json:"probe_s,omitempty"`
	// Slices is how many stretches were counted, the first one included;
	// Counted their time in all and Window the window's.
	Slices  int     `json:"slices,omitempty"`
	Counted float64 `json:"counted_s,omitempty"`
	Window  float64 `json:"window_s,omitempty"`
	// Scale is what the counts were multiplied by: Window / Counted.
	Scale float64 `json:"scale,omitempty"`
	// Exact says counting every call was asked for (--exact).
	Exact bool `json:"exact,omitempty"`
}

// Share is the part of the window counted, 1 for an exact count.
func (c *Counting) Share() float64 {
	if c == nil || !c.Sampled || c.Window <= 0 {
		return 1
	}
	return c.Counted / c.Window
}

// String says how counts were sampled, for the reports' notes; "" for an
// exact count.
func (c *Counting) String() string {
	if c == nil || !c.Sampled {
		return ""
	}
	perCPU := ""
	if c.ProbeRateCPU > 0 {
		perCPU = fmt.Sprintf(", %s per second of its CPU", approx(c.ProbeRateCPU))
	}
	return fmt.Sprintf("syscall counts are sampled: the target made %s calls a second over the first %v%s (counting every call costs it a quarter of its speed at millions a second; sampled above %s), "+
		"so calls were counted in %d slices, %.1f%% of the window (%.2f s of %.2f s), and scaled by %.1f: counts and rates are estimates, the rates those of the slices, where counting slows a thread this fast; --exact counts every call",
		approx(c.ProbeRate), time.Duration(c.Probe*1e3)*time.Millisecond, perCPU, approx(SampleAbove), c.Slices, 100*c.Counted/c.Window, c.Counted, c.Window, c.Scale)
}

func approx(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.0fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// scaled returns p's stats with every count multiplied by scale: the
// calls, the bytes, and the calls not counted; the timed calls and their
// durations stay as measured (a mean and a histogram need no scaling).
func scaled(p *Profile) (map[Key]*Stat, uint64) {
	c := p.Counting
	if c == nil || !c.Sampled || c.Scale <= 1 {
		return p.Stats, p.Dropped
	}
	out := make(map[Key]*Stat, len(p.Stats))
	for k, s := range p.Stats {
		v := *s
		v.Count = scaleCount(s.Count, c.Scale)
		v.Bytes = scaleCount(s.Bytes, c.Scale)
		// A count scaled up must still hold the calls timed.
		v.Count = max(v.Count, v.Timed)
		out[k] = &v
	}
	return out, scaleCount(p.Dropped, c.Scale)
}

func scaleCount(n uint64, scale float64) uint64 {
	v := math.Round(float64(n) * scale)
	if v >= math.MaxUint64 {
		return math.MaxUint64
	}
	return uint64(v)
}
