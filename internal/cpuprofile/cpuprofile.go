package cpuprofile

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/flame"
	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/sample"
	"github.com/cpuwhy/cpuwhy/internal/stack"
	"github.com/cpuwhy/cpuwhy/internal/unwind"
)

// Options shape a recording.
type Options struct {
	FS        proc.FS
	Frequency int           // samples per second per thread on CPU; 0: sample's default (99)
	Duration  time.Duration // 0: until ctx ends or the target exits
	Kernel    bool          // record kernel stacks too
	DebugDirs []string      // extra places to find debug files (--debug-dir)
	NoAttach  bool          // forbid asking a runtime for its names (--no-attach)
	// Runtimes are the runtimes tried on the process; nil: all that are
	// registered (a test of one runtime names it alone).
	Runtimes []stack.Runtime
	// Progress, when set, is called about once a second while recording
	// with the time so far.
	Progress func(elapsed time.Duration)
	// Ready is sample.Options.Ready: called once sampling is set up,
	// the window starting when it returns.
	Ready func()
	// NsPID is the process's PID in its own namespace, where a JIT
	// names its /tmp/perf-PID.map; 0: the same.
	NsPID int
	// Shared is stack.Options.Shared: what the recordings of a
	// long-lived process share; nil for a one-shot one.
	Shared *stack.Shared
	// Locks has an interpreter's global lock (CPython's GIL) read on a
	// timer while recording (Result.Lock counts those readings, where
	// it otherwise counts the samples'): what the diagnosis judges
	// gil_contention by. A recording that does not need it is spared the
	// timer's wakeups.
	Locks bool
}

// Result is a recorded profile and what is worth saying about it.
type Result struct {
	Profile *flame.Profile
	Samples int
	// UnwoundToStart counts the samples whose user stack reached a
	// thread's start (the unwinder ran out of frames cleanly rather than
	// stopping on missing information).
	UnwoundToStart int
	Lost, Dropped  uint64
	Notes          []string
	// Leaves counts the samples of each innermost user address per
	// thread, hottest first: the instructions a compute loop spends its
	// time on.
	Leaves []Leaf
	// Execs are the execs the process ran while it was recorded, in
	// order (the first 64); the process's name is the last one's To.
	Execs []Exec
	// Lock is the interpreter's global lock (CPython's GIL) counted at
	// the samples, nil for a process that runs none.
	Lock *stack.LockHolders
}

// lockEvery is how often an interpreter's global lock (the GIL) is read
// on a timer while recording: twice its switch interval (5 ms), 300
// readings over a 3 s window to rank its holders by, for 100 reads of a
// few bytes of the process a second.
const lockEvery = 10 * time.Millisecond

// Exec is an exec the process ran while it was recorded: the samples
// before it are named by the mappings of the program it ran until then.
type Exec struct {
	At   time.Duration // since the recording began
	From string        // the process's name before
	To   string        // and after: the new program's file name
}

// MarshalJSON writes At in seconds, as the reports' other times are.
func (e Exec) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		At   float64 `json:"at_s"`
		From string  `json:"from"`
		To   string  `json:"to"`
	}{math.Round(e.At.Seconds()*1000) / 1000, e.From, e.To})
}

// Leaf is an innermost user address of a thread and how often it was
// sampled.
type Leaf struct {
	TID      int
	PC       uint64
	Function string // the frame's name: function, or module+0xoffset
	Count    int
	// Past is set for an address sampled before an exec the process ran:
	// the code there is no longer the process's.
	Past bool
}

// queueLen bounds the samples waiting to be unwound: 256 stack copies of
// at most 16 KiB, 4 MiB, whatever the window's length. It absorbs the
// first seconds, when every new address is named for the first time;
// once naming is warm the drain processes most samples itself. A
// variable for the test of a full queue.
var queueLen = 256

// reachSlack is what a thread's stack copy keeps beyond the deepest
// its samples were seen to reach: a sample deeper than that by more is
// unwound only as far as the copy goes, and its thread's copies are whole
// from then on.
const reachSlack = 4 << 10

// stackReaches are, by thread, how much of each sample's stack copy to
// keep for the unwinder: the kernel copies 16 KiB of every sample's stack
// (a thread's stack is usually much shallower), and copying it out of
// the ring whole was a fifth of cpuwhy's CPU while sampling at 99 Hz.
// Learned from the threads' unwound samples (the worker) and read as
// samples are drained (the sampler). Only where no runtime reads the
// stack copy beyond the frames (Resolver.ReadsStacks).
type stackReaches struct {
	trim      bool
	mu        sync.Mutex
	need      map[int]int // bytes to keep by TID; missing: the whole copy
	truncated int         // samples whose walk ran off a shortened copy
}

// maxReachThreads bounds need: past it, threads not seen are copied
// whole.
const maxReachThreads = 1 << 14

// copyLen is how many of the full bytes of a sample of tid to copy.
func (r *stackReaches) copyLen(tid, full int) int {
	if !r.trim {
		return full
	}
	r.mu.Lock()
	need, ok := r.need[tid]
	r.mu.Unlock()
	if !ok {
		return full
	}
	return min(need, full)
}

// learn records how deep the sample of j reached (a walk that reached
// the thread's start) or that it ran off a shortened copy.
func (r *stackReaches) learn(j *job, stop unwind.Stop, reach uint64) {
	if !r.trim {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case stop == unwind.StopMemory && len(j.stack) < j.full:
		r.truncated++
		r.need[j.tid] = math.MaxInt // whole from now on
	case stop.Complete():
		want := int(reach) + reachSlack
		if old, ok := r.need[j.tid]; ok && old >= want {
			return
		}
		if len(r.need) < maxReachThreads {
			r.need[j.tid] = want
		}
	}
}

// inlineWarm and inlineBudget bound the samples the drain processes
// itself: only once the worker names a sample in less than inlineWarm
// (past the first naming of the target's objects, hundreds of
// milliseconds during which the rings must go on being drained), and
// no more than inlineBudget of a drain's time, past which its samples
// go to the worker: a ring has about 150 ms of room at 99 Hz beyond its
// watermark, 15 ms at 999 Hz.
const (
	inlineWarm   = 200 * time.Microsecond
	inlineBudget = 2 * time.Millisecond
)

// maxNamedStacks bounds the stacks of addresses whose counting key is
// kept (a few hundred bytes each): past it they are forgotten and named
// again as they come.
const maxNamedStacks = 1 << 14

// appendPCKey appends to b what names a sample's stack while the
// resolver's Version stays the same: its thread, its program's
// generation, and its kernel and user addresses.
func appendPCKey(b []byte, tid, gen int, kernel, user []uint64) []byte {
	b = binary.AppendUvarint(b, uint64(tid))
	b = binary.AppendUvarint(b, uint64(gen))
	b = binary.AppendUvarint(b, uint64(len(kernel)))
	for _, pc := range kernel {
		b = binary.NativeEndian.AppendUint64(b, pc)
	}
	for _, pc := range user {
		b = binary.NativeEndian.AppendUint64(b, pc)
	}
	return b
}

// job is one sample handed from the sampler to the unwinder, or an exec.
type job struct {
	tid    int
	time   uint64
	regs   unwind.Regs
	valid  bool
	stack  []byte
	full   int // the bytes of stack the kernel copied, of which stack holds the first
	kernel []uint64
	// exec is set for an exec the process ran at time, into a program
	// mapped by maps.
	exec bool
	maps []proc.Mapping
}

// maxQueuedExecs is the room the queue keeps for execs beyond its
// samples: an exec is never dropped, and the sampler waits for room
// only when a process runs exec more often than this between two
// drains.
const maxQueuedExecs = 8

// maxExecNotes bounds the execs a note each tells of.
const maxExecNotes = 3

// Record samples process pid and returns its profile. Each sample is
// unwound and named as it arrives, while the mappings it ran under are
// current, and counted; none is kept, so memory grows with the distinct
// stacks, not with the window. An exec the process runs comes through
// the same queue, ahead of the samples taken after it, and each sample
// is unwound and named by the program it ran, picked by its time: those
// drained from one CPU's ring may be older than an exec already told.
func Record(ctx context.Context, pid int, opts Options) (*Result, error) {
	resolver, err := stack.New(pid, stack.Options{FS: opts.FS, NsPID: opts.NsPID, DebugDirs: opts.DebugDirs, Kernel: opts.Kernel, NoAttach: opts.NoAttach, Runtimes: opts.Runtimes, Shared: opts.Shared})
	if err != nil {
		return nil, fmt.Errorf("sampling process %d: %w", pid, err)
	}
	defer resolver.Close()
	start := time.Now()

	// The sampler drains the rings and hands each sample over; one
	// worker unwinds and names. When the worker falls behind, samples
	// are dropped here and counted, never silently.
	// Jobs go over as one batch per drain: a channel send per sample
	// woke the worker, and with it an OS thread, for every sample,
	// which was most of cpuwhy's CPU while sampling at 99 Hz (the Go
	// scheduler's parking and waking in a profile of it).
	queue := make(chan []*job, queueLen+maxQueuedExecs) // each batch holds a job at least
	free := make(chan *job, queueLen)
	var dropped uint64
	counts := stack.NewCounts()
	var unwoundToStart int
	// named holds the counts' key of each stack of addresses, while the
	// resolver's Version (what its namers know) stays namedVersion.
	named, namedVersion := map[string]string{}, uint64(0)
	reaches := &stackReaches{trim: !resolver.ReadsStacks(), need: map[int]int{}}
	var pcKey []byte
	// process unwinds, names and counts one sample, or tells the
	// resolver of an exec; under mu, which the worker holds for a
	// batch and the drain for a sample it processes itself.
	var mu sync.Mutex
	process := func(j *job) {
		if j.exec {
			resolver.Exec(j.time, j.maps)
			return
		}
		gen := resolver.At(j.time)
		var user []uint64
		if j.valid {
			pcs, stop := resolver.Unwind(j.regs, unwind.StackCopy{Base: j.regs.SP, Data: j.stack})
			if stop.Complete() {
				unwoundToStart++
			}
			user = pcs
			reaches.learn(j, stop, resolver.StackReach())
		}
		var leaf uint64
		if len(user) > 0 {
			leaf = user[0]
		}
		// A stack of addresses seen before, whose frames were steady,
		// is counted by the key its frames were counted by, not named
		// again: naming and keying the frames was a fifth of the CPU
		// while sampling at 99 Hz. Not where a runtime reads more than
		// the addresses, whose frames are never steady.
		keyed := !resolver.ReadsStacks()
		if keyed {
			if v := resolver.Version(); v != namedVersion {
				clear(named) // a namer learnt names: stacks may read otherwise now
				namedVersion = v
			}
			pcKey = appendPCKey(pcKey[:0], j.tid, gen, j.kernel, user)
			if key, ok := named[string(pcKey)]; ok {
				counts.AddKey(key, j.tid, gen, leaf)
				return
			}
		}
		frames := resolver.Frames(j.tid, j.kernel, user)
		if !resolver.Steady(frames) {
			counts.Add(j.tid, gen, frames, leaf)
			return
		}
		if len(named) >= maxNamedStacks {
			clear(named)
		}
		named[string(pcKey)] = counts.AddKeyed(j.tid, gen, frames, leaf)
	}
	var inFlight atomic.Int32 // batches sent and not yet processed
	// perSample is the worker's time per sample in its last batch, in
	// ns: the drain processes samples itself only once naming is warm.
	var perSample atomic.Int64
	perSample.Store(math.MaxInt64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for batch := range queue {
			t0 := time.Now()
			mu.Lock()
			for _, j := range batch {
				process(j)
			}
			mu.Unlock()
			perSample.Store(int64(time.Since(t0)) / int64(len(batch)))
			inFlight.Add(-1)
			for _, j := range batch {
				if !j.exec {
					free <- j
				}
			}
		}
	}()
	// The drain processes a sample itself, from the ring, when the
	// worker is idle with nothing queued, its last batch took less than
	// inlineWarm a sample, and this drain has not spent inlineBudget on
	// it: no stack copy, no job, no goroutine woken (together half of
	// cpuwhy's CPU while sampling at 99 Hz once the rest was cut). Where
	// the samples must reach a runtime at once (Prompt: it was tried,
	// and fewer Python callers were right) or a runtime reads the stack
	// copies, every sample goes to the worker as before.
	inline := !resolver.Prompt() && !resolver.ReadsStacks()
	var pending []*job // the jobs of the drain under way
	var inlineSpent time.Duration
	var inlineJob job
	processInline := func(s *sample.Sample) bool {
		if !inline || len(pending) > 0 || inFlight.Load() > 0 || inlineSpent > inlineBudget ||
			perSample.Load() > int64(inlineWarm) || !mu.TryLock() {
			return false
		}
		t0 := time.Now()
		j := &inlineJob
		j.tid, j.time, j.valid = s.TID, s.Time, s.UserRegsValid
		j.regs = unwind.Regs{PC: s.Regs.IP, SP: s.Regs.SP, FP: s.Regs.BP, LR: s.Regs.LR}
		j.stack, j.full, j.kernel = s.Stack, len(s.Stack), s.Kernel
		process(j)
		j.stack, j.kernel = nil, nil // the ring's, valid only during the call
		mu.Unlock()
		inlineSpent += time.Since(t0)
		return true
	}
	allocated := 0
	handle := func(s *sample.Sample) {
		if processInline(s) {
			return
		}
		var j *job
		select {
		case j = <-free:
		default:
			if allocated < queueLen {
				allocated++
				j = &job{}
				break
			}
			// The worker is behind (the first naming of the target's
			// objects), or one drain holds more samples than the
			// queue and the drain's own budget: what is pending goes
			// to the worker now, and this sample is dropped and
			// counted. Waiting for the worker instead left the rings
			// to overflow, and the kernel does not count what it
			// loses once the events are disabled.
			if len(pending) > 0 {
				inFlight.Add(1)
				queue <- pending
				pending = nil
			}
			dropped++
			return
		}
		j.tid, j.time, j.valid = s.TID, s.Time, s.UserRegsValid
		j.regs = unwind.Regs{PC: s.Regs.IP, SP: s.Regs.SP, FP: s.Regs.BP, LR: s.Regs.LR}
		j.full = len(s.Stack)
		j.stack = append(j.stack[:0], s.Stack[:reaches.copyLen(s.TID, len(s.Stack))]...)
		j.kernel = append(j.kernel[:0], s.Kernel...)
		pending = append(pending, j)
	}
	execs := 0
	exec := func(e *sample.Exec) {
		execs++
		pending = append(pending, &job{exec: true, time: e.Time, maps: e.Maps})
	}
	drained := func() {
		inlineSpent = 0
		if len(pending) > 0 {
			inFlight.Add(1)
			queue <- pending // never blocks: at most queueLen sample jobs exist
			pending = nil
		}
	}

	stopProgress := progress(opts.Progress, start)
	stopLocks := func() {}
	if opts.Locks {
		stopLocks = resolver.WatchLocks(lockEvery)
	}
	events := resolver.Events() // before Prompt: a runtime that reads samples in the kernel needs them fresh no more
	rec, err := sample.Record(ctx, pid, sample.Options{Frequency: opts.Frequency, Duration: opts.Duration, Kernel: opts.Kernel,
		FS: opts.FS, Ready: opts.Ready, Handle: handle, Exec: exec, Drained: drained, Event: events, Prompt: resolver.Prompt()})
	stopProgress()
	close(queue)
	<-done
	stopLocks() // after the worker: the instance is the caller's again
	if err != nil {
		return nil, fmt.Errorf("sampling process %d: %w", pid, err)
	}

	res := &Result{Samples: int(counts.Total()), Lost: rec.Lost, Dropped: rec.Dropped + dropped, UnwoundToStart: unwoundToStart, Notes: rec.Notes}
	if dropped > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d samples dropped: unwinding fell behind the sampling", dropped))
	}
	if n := reaches.truncated; n > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d samples were unwound from a shortened copy of the stack that ended before their outermost frame (a thread deeper than it had been): their outer frames are missing", n))
	}
	res.Notes = append(res.Notes, resolver.Notes()...)
	res.Lock = resolver.LockHolders()
	for _, l := range counts.Leaves() {
		resolver.Generation(l.Gen)
		res.Leaves = append(res.Leaves, Leaf{TID: l.TID, PC: l.PC, Function: resolver.Leaf(l.TID, l.PC).Name(), Count: l.Count, Past: l.Gen < execs})
	}
	stacks := counts.Stacks()
	fs := make([]flame.Stack, len(stacks))
	for i, st := range stacks {
		thread := rec.Threads[st.TID]
		if st.TID == pid && st.Gen < len(rec.Execs) {
			thread = rec.Execs[st.Gen].PrevComm // the main thread's name then
		}
		fs[i] = flame.Stack{Frames: st.Frames, Thread: thread, TID: st.TID, Count: st.Count}
	}
	for i, e := range rec.Execs {
		x := Exec{At: max(0, time.Duration(e.Time)-rec.Start), From: e.PrevComm, To: e.Comm}
		res.Execs = append(res.Execs, x)
		if i < maxExecNotes {
			res.Notes = append(res.Notes, fmt.Sprintf("process %d ran exec %.1f s into the window: %s became %s (its name from then on); the samples from before are named by the mappings %s ran under",
				pid, x.At.Seconds(), x.From, x.To, x.From))
		}
	}
	if n := rec.ExecCount - maxExecNotes; n > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("process %d ran exec %d more times, the last into %s", pid, n, rec.Threads[pid]))
	}
	p := &flame.Profile{
		Stacks:   flame.Merge(fs),
		Duration: rec.Duration,
		PID:      pid,
		Start:    start,
		Missing:  resolver.Missing(),
	}
	if f := opts.Frequency; f > 0 {
		p.Period = time.Second / time.Duration(f)
	} else {
		p.Period = time.Second / sample.DefaultFrequency
	}
	res.Profile = p
	return res, nil
}

// progress calls report once a second until the returned stop is called.
func progress(report func(time.Duration), start time.Time) (stop func()) {
	if report == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				report(time.Since(start))
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}
