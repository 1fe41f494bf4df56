package ebpf

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/cilium/ebpf"

	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/syscalls"
)

// Counting by slices (syscalls.SampleAbove says why). sys_exit counts
// every call of the target for the first syscalls.CountProbe of the
// window; if the process made more than SampleAbove calls a second there,
// the programs are detached, and from then on attached for one slice of
// every countPeriod, at a random point of it, so that periodic work cannot
// fall into step with the slices. Detached, not disabled by a flag the
// programs read: the kernel's syscall tracepoint sends every syscall of
// the host through its slow path while anything is attached to it, and
// that, with the program's entry, is most of the cost (the hook alone, an
// empty program, keeps 73-81% of a 3.7M calls/s poller's rate), which a
// flag checked inside the program would leave whole.
//
// The slices' share of the window is SampledRate over the rate of the
// probe (at least MinCountShare): a target calling twice as fast is
// counted half as long, and pays about what 50,000 calls a second
// counted exactly cost. The counts stay what was counted; the profile
// says how long that was (Profile.Counting), and the report scales.
//
// Timing and stacks need sys_enter, which is attached only inside a slice
// (after sys_exit, and detached before it, as attach does): an entry
// whose exit came while sys_exit was detached would otherwise be matched
// with a later call's exit, timing the gap. The entries still pending when
// a slice ends (calls in progress) are forgotten, for the same reason
// (forgetEntries). With stacks sys_enter is attached in every slice, and
// samples calls as it does throughout an exact trace; timing alone
// attaches it in a slice with the chance that makes its time 1/TimeEvery
// of the window's, as the timing slices of an exact trace do (every call
// inside is timed).
const countPeriod = 200 * time.Millisecond

// countResult is what the count slicer did.
type countResult struct {
	counting *syscalls.Counting
	timedFor time.Duration // sys_enter attached for timing (slices without stacks)
}

// probeFrom is where the probe starts: when sys_exit was attached, and
// the target's threads' time just before.
type probeFrom struct {
	at    time.Time
	sched threadTime
}

// counter runs the schedule of sys_exit and sys_enter for a trace
// started at from until stop: counting by slices when the probe's rate
// calls for it, else what an exact trace does (the timing slicer when
// timing is sliced).
func (a *attachment) counter(objs *syscallsObjects, fs proc.FS, pid int, opts syscalls.Options, from probeFrom, stop <-chan struct{}) (countResult, error) {
	start := from.at
	var res countResult
	if opts.Exact {
		res.counting = &syscalls.Counting{Exact: true}
		if sliced(opts) {
			var err error
			res.timedFor, err = a.slicer(objs, opts.TimeEvery, opts.Duration, stop)
			return res, err
		}
		return res, nil
	}
	// The probe lasts CountProbe, and on until the target has run
	// minProbeRun (up to maxProbe): on a loaded machine a poller given a
	// twentieth of its core runs 2 ms in 50, too little to tell its calls
	// per second of CPU.
	wait := syscalls.CountProbe
	var s threadTime
	for {
		select {
		case <-stop:
			return res, nil
		case <-time.After(wait):
		}
		s = schedOf(fs, pid)
		if !s.known || !from.sched.known || s.run-from.sched.run >= minProbeRun || time.Since(start) >= maxProbe {
			break
		}
		wait = syscalls.CountProbe / 2
	}
	calls, err := callsSoFar(objs)
	if err != nil {
		return res, fmt.Errorf("reading the calls of the first %v: %w", time.Since(start), err)
	}
	probe := time.Since(start)
	rate := float64(calls) / probe.Seconds()
	res.counting = &syscalls.Counting{ProbeRate: rate, Probe: probe.Seconds()}
	density, busy := rate, false
	if s.known && from.sched.known && s.run-from.sched.run >= time.Millisecond {
		res.counting.ProbeRateCPU = float64(calls) / (s.run - from.sched.run).Seconds()
		density = max(rate, res.counting.ProbeRateCPU)
		busy = (s.wanted - from.sched.wanted).Seconds() >= syscalls.ProbeBusy*probe.Seconds()
	}
	// Fast per second of the window, or per second of its CPU when it
	// wants the CPU but shares its core: counting costs a thread in
	// proportion to its calls while it runs.
	if rate <= syscalls.SampleAbove && (!busy || density <= syscalls.SampleAbove) {
		if sliced(opts) {
			res.timedFor, err = a.slicer(objs, opts.TimeEvery, max(opts.Duration-syscalls.CountProbe, syscalls.CountProbe), stop)
		}
		return res, err
	}

	// The probe was a slice of its own. A slice's time runs from the
	// return of the attach to the call of the detach: the program counts
	// from when attaching publishes it, at the end of the call, to when
	// detaching unpublishes it, at the start of one that then waits for
	// the tracepoint's readers (a grace period of the syscall
	// tracepoints, which may fault: up to hundreds of milliseconds on a
	// loaded machine, where counting its middle put a slice at 0.4 s that
	// had counted 20 ms of calls).
	res.counting.Sampled = true
	share := min(1, max(syscalls.SampledRate/density, syscalls.MinCountShare))
	slice := time.Duration(share * float64(countPeriod))
	a.detachEnter()
	counted := time.Since(start)
	a.detachExit()
	slices := 1
	if err := forgetEntries(objs, fs, pid, opts); err != nil {
		return res, err
	}
	timeChance := 0.0
	if opts.TimeEvery > 0 {
		timeChance = min(1, 1/(float64(opts.TimeEvery)*share))
	}
	defer func() {
		res.counting.Slices, res.counting.Counted = slices, counted.Seconds()
	}()
	// The slices are kept to their share of the time since the probe:
	// on a loaded machine (or one core, shared with the target) cpuwhy
	// wakes late to end a slice, and a slice of 6 ms ran 20; a period
	// whose slice the ones before have used up already is skipped, and
	// one owed time gets up to two slices' worth.
	sliced0, slicedFor := time.Now(), time.Duration(0)
	for {
		want := time.Duration(share*float64(time.Since(sliced0)+countPeriod)) - slicedFor
		if want < slice/2 {
			select {
			case <-stop:
				return res, nil
			case <-time.After(countPeriod):
			}
			continue
		}
		thisSlice := min(want, 2*slice)
		offset := time.Duration(rand.Int64N(int64(countPeriod - thisSlice + 1)))
		select {
		case <-stop:
			return res, nil
		case <-time.After(offset):
		}
		t0 := time.Now()
		if err := a.attachExit(objs); err != nil {
			return res, err
		}
		on := time.Now()
		timing := opts.TimeEvery > 0 && rand.Float64() < timeChance
		if opts.Stacks || timing {
			if err := a.attachEnter(objs); err != nil {
				a.detachExit()
				return res, err
			}
		}
		enterOn := time.Now()
		select {
		case <-stop:
		case <-time.After(thisSlice - enterOn.Sub(t0)):
		}
		if a.enter != nil {
			a.detachEnter()
			if timing {
				res.timedFor += time.Since(enterOn)
			}
		}
		took := time.Since(on)
		a.detachExit()
		counted += took
		slicedFor += took
		slices++
		if err := forgetEntries(objs, fs, pid, opts); err != nil {
			return res, err
		}
		select {
		case <-stop:
			return res, nil
		case <-time.After(countPeriod - offset - thisSlice):
		}
	}
}

// The probe's extension: it lasts until the target has run minProbeRun,
// or maxProbe has passed.
const (
	minProbeRun = 5 * time.Millisecond
	maxProbe    = 500 * time.Millisecond
)

// maxProbeThreads bounds the threads whose CPU time the probe reads
// (twice, a file each): past it, the rate per second of the window alone
// sizes the slices.
const maxProbeThreads = 256

// threadTime is what the threads of a process have run, and run or
// waited on a run queue (what they wanted), from schedstat; known false
// for a process with more than maxProbeThreads threads, or gone.
type threadTime struct {
	run, wanted time.Duration
	known       bool
}

// schedOf reads the threadTime of pid. A thread that ends between two
// readings takes its time with it: the difference is then short, and the
// calls per second of CPU high, which only makes the slices shorter.
func schedOf(fs proc.FS, pid int) threadTime {
	tids, err := fs.Tasks(pid, nil)
	if err != nil || len(tids) > maxProbeThreads {
		return threadTime{}
	}
	t := threadTime{known: true}
	for _, tid := range tids {
		if st, err := fs.Schedstat(pid, tid); err == nil {
			t.run += st.OnCPU
			t.wanted += st.OnCPU + st.Waiting
		}
	}
	return t
}

// callsSoFar is the calls counted so far: in the table, in each CPU's
// pending run and in spill. Read while the programs run: a count a
// moment old, and without the keys the sweeper has just moved out (the
// threads that exited), which can only make the rate look lower, and the
// count exact.
func callsSoFar(objs *syscallsObjects) (uint64, error) {
	var n uint64
	var key syscallsKey
	var perCPU []syscallsStat
	it := objs.Stats.Iterate()
	for it.Next(&key, &perCPU) {
		for i := range perCPU {
			n += perCPU[i].Count
		}
	}
	if err := it.Err(); err != nil {
		return 0, fmt.Errorf("stats: %w", err)
	}
	var last []syscallsLast
	if err := objs.LastKey.Lookup(uint32(0), &last); err != nil {
		return 0, fmt.Errorf("last_key: %w", err)
	}
	for _, l := range last {
		n += l.Count
	}
	var v syscallsSpilled
	sp := objs.Spill.Iterate()
	for sp.Next(&key, &v) {
		n += v.Count
	}
	if err := sp.Err(); err != nil {
		return 0, fmt.Errorf("spill: %w", err)
	}
	return n, nil
}

// forgetEntries forgets the entries of the target's calls still in
// progress when sys_exit was detached (their slots in inflight, chosen by
// TID): their exits came while it was, and an entry left would be matched
// with the next call's exit in a later slice, timing the gap between. It
// runs with both programs detached, so nothing writes the slots meanwhile.
func forgetEntries(objs *syscallsObjects, fs proc.FS, pid int, opts syscalls.Options) error {
	if opts.TimeEvery == 0 {
		return nil // nothing is timed: inflight is not used
	}
	tids, err := fs.Tasks(pid, nil)
	if err != nil {
		return nil // gone: the trace ends at the next poll
	}
	slots := int(objs.Inflight.MaxEntries())
	if len(tids) >= slots {
		return zeroInflight(objs.Inflight)
	}
	keys := make([]uint32, 0, len(tids))
	for _, tid := range tids {
		keys = append(keys, uint32(tid)&uint32(slots-1))
	}
	zeros := make([]uint64, len(keys))
	if _, err := objs.Inflight.BatchUpdate(keys, zeros, nil); err != nil {
		for i := range keys {
			if err := objs.Inflight.Put(keys[i], zeros[i]); err != nil {
				return fmt.Errorf("forgetting the entries of %d's calls in progress: %w", pid, err)
			}
		}
	}
	return nil
}

// zeroInflight empties every slot of inflight.
func zeroInflight(m *ebpf.Map) error {
	n := int(m.MaxEntries())
	for i := range n {
		if err := m.Put(uint32(i), uint64(0)); err != nil {
			return fmt.Errorf("emptying %v: %w", m, err)
		}
	}
	return nil
}
