package ebpf

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"

	"github.com/cpuwhy/cpuwhy/internal/proc"
	pyebpf "github.com/cpuwhy/cpuwhy/internal/stack/python/ebpf"
	"github.com/cpuwhy/cpuwhy/internal/sys"
	"github.com/cpuwhy/cpuwhy/internal/syscalls"
	"github.com/cpuwhy/cpuwhy/internal/sysno"
)

// Sizes of what Profile.Stacks keeps. A trace records a stack per sampled
// call; a report shows a handful, so the rest would only cost memory.
const (
	// StackPairs is the number of (thread, syscall) pairs, the most
	// sampled first, whose stacks are kept.
	StackPairs = 32
	// StacksPerPair is the number of distinct stacks kept per pair, the
	// most seen first.
	StacksPerPair = 8
)

// pollInterval is how often the target is checked for having exited: a
// trace of an exited process ends at most this late.
const pollInterval = 100 * time.Millisecond

// retZero is the key's err of a success that returned 0 (RET_ZERO in
// syscalls.bpf.c).
const retZero = 0x10000

// Indexes of the dropped counters (DROP_* in syscalls.bpf.c).
const (
	dropStats = iota
	dropStackKeys
	dropStackWalk
	dropPyWalk
	dropPyChains
	dropCounters
)

// maxPyChains is the most distinct Python frame chains a trace keeps
// (PY_CHAINS in syscalls.bpf.c).
const maxPyChains = 1024

// NoteFramePointers is the Profile note of a trace with stacks.
const NoteFramePointers = "user stacks are walked by frame pointers: code built without them " +
	"(release builds with -fomit-frame-pointer, Debian's libc) shows only its innermost frame " +
	"or wrong frames past it"

// NotePythonChains is the Profile note of a trace whose stacks carry
// their thread's Python frame chain.
const NotePythonChains = "the Python frames of each stack are its thread's frame chain, read in the kernel at the call " +
	"(the frame-pointer walk does not get through the interpreter's C code)"

// NoteLeafCaller is the Profile note of a trace whose stacks had their
// second frame found by leafCaller.
const NoteLeafCaller = "where the frame-pointer walk stopped at the innermost frame, the second " +
	"frame is the first return address found at the top of the stack (or in the link register): " +
	"the caller of a syscall wrapper, usually, but a guess"

// Tracer is the syscalls.Tracer that aggregates in the kernel with BPF.
type Tracer struct {
	proc proc.FS // where thread names are read

	// keep holds the programs from one trace to the next (NewKept);
	// nil: each trace loads its own.
	keep *kept

	// Test hooks, run with the programs attached: right after attaching
	// (with the IDs of the programs) and right before detaching. They let
	// a test read the target's own call count inside the traced window.
	attached  func(progs []ebpf.ProgramID)
	detaching func()
}

var _ syscalls.Tracer = (*Tracer)(nil)

// New returns a Tracer reading thread names from the host's /proc.
func New() *Tracer { return &Tracer{} }

// Trace profiles the system calls of every thread of pid for
// opts.Duration, or until ctx ends or the process exits: then the profile
// covers the window so far and, for an exit, says so in Ended.
func (t *Tracer) Trace(ctx context.Context, pid int, opts syscalls.Options) (*syscalls.Profile, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = withDefaults(opts)
	watch, err := sys.WatchProcess(pid)
	if err != nil {
		return nil, fmt.Errorf("tracing process %d: %w: %w", pid, proc.ErrGone, err)
	}
	defer watch.Close()

	objs, release, err := t.programs(pid, opts)
	var pyLost error
	if err != nil && walksPython(opts) {
		// The Python walk may be what failed (a layout it cannot use,
		// a kernel that refuses it): without it, the trace loses the
		// chains, not its mechanism (ptrace would stop the target at
		// every call). Where the programs fail without it too, that is
		// the error.
		noPython := opts
		noPython.Chains = nil
		objs, release, pyLost = nil, nil, err
		if objs, release, err = t.programs(pid, noPython); err == nil {
			opts = noPython
		}
	}
	if err != nil {
		return nil, err
	}
	defer release()
	// A kept set's count of skipped runs goes on from the last trace.
	var misses0 uint64
	if st, err := objs.SysExit.Stats(); err == nil {
		misses0 = st.RecursionMisses
	}

	scanner := proc.NewScanner(t.proc)
	names := map[int]string{}
	readThreadNames(scanner, pid, names)
	// The Python threads known when the trace starts, and those that
	// come, told at each poll: a thread's first calls until then have
	// stacks without their chain.
	pyErr := pushThreads(objs, opts)

	// Attaching is what starts the counting, and takes milliseconds;
	// loading and verifying, before, take much longer.
	if opts.Ready != nil {
		opts.Ready()
	}
	// The target's CPU time so far, for its calls per second of CPU in
	// the probe (countslice.go): read before attaching, so that no call
	// counted falls before it.
	var sched0 threadTime
	if !opts.Exact {
		sched0 = schedOf(t.proc, pid)
	}
	att, err := attach(objs, opts)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if t.attached != nil {
		t.attached(att.programs(objs))
	}
	var counted countResult
	var sliceErr error
	stopSlicer, slicerDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(slicerDone)
		counted, sliceErr = att.counter(objs, t.proc, pid, opts, probeFrom{start, sched0}, stopSlicer)
	}()
	sw := newSweeper(t.proc, pid, opts.MaxKeys)
	ended := wait(ctx, watch, opts.Duration, func() {
		sw.sweep(objs)
		if pyErr == nil {
			pyErr = pushThreads(objs, opts)
		}
	})
	close(stopSlicer)
	<-slicerDone
	if t.detaching != nil {
		t.detaching()
	}
	elapsed := time.Since(start)
	att.Close()
	if sliceErr != nil {
		return nil, sliceErr
	}

	p := &syscalls.Profile{
		PID:       pid,
		Mechanism: syscalls.EBPF,
		Start:     start,
		Duration:  elapsed,
		Stats:     map[syscalls.Key]*syscalls.Stat{},
		Threads:   map[int]string{},
		Counting:  counted.counting,
	}
	if c := p.Counting; c != nil && c.Sampled {
		c.Window = elapsed.Seconds()
		c.Scale = c.Window / max(c.Counted, 1e-6)
	}
	if ended {
		p.Ended = fmt.Sprintf("process %d exited after %.1f s", pid, elapsed.Seconds())
	} else {
		readThreadNames(scanner, pid, names)
	}
	if err := t.collect(objs, opts, sw, misses0, p); err != nil {
		return nil, fmt.Errorf("reading the profile of %d: %w", pid, err)
	}
	for tid, name := range sw.names {
		if _, ok := names[tid]; !ok {
			names[tid] = name
		}
	}
	if pyLost != nil {
		p.Notes = append(p.Notes, fmt.Sprintf("the Python frame chains of the stacks were not read (their stacks are named from the live process after the trace): %v", pyLost))
	}
	if pyErr != nil {
		p.Notes = append(p.Notes, fmt.Sprintf("Python frame chains were read with the stacks of the threads known until: %v", pyErr))
	}
	if sw.err != nil {
		p.Notes = append(p.Notes, fmt.Sprintf("the keys of exited threads were kept in the kernel's table from then on: %v", sw.err))
	}
	for key := range p.Stats {
		if key.TID == syscalls.ExitedTID {
			continue // named by the sweeper
		}
		name, ok := names[key.TID]
		if !ok {
			name = kernelComm(objs, key.TID)
		}
		p.Threads[key.TID] = name
	}
	switch {
	case p.Counting != nil && p.Counting.Sampled && opts.Stacks:
		p.Notes = append(p.Notes, fmt.Sprintf("durations and stacks are sampled: 1 call in %d of those counted, at random", opts.TimeEvery))
	case p.Counting != nil && p.Counting.Sampled && opts.TimeEvery > 0:
		p.Notes = append(p.Notes, fmt.Sprintf("durations are sampled: every call made in some of the slices counted (%.2f s in all, %.1f%% of the window; at most 1/%d of it) is timed",
			counted.timedFor.Seconds(), 100*counted.timedFor.Seconds()/max(elapsed.Seconds(), 1e-9), opts.TimeEvery))
	case sliced(opts):
		p.Notes = append(p.Notes, fmt.Sprintf("durations are sampled: every call made during 1/%d of the window (slices of up to %v at random points, %.2f s in all) is timed",
			opts.TimeEvery, timingSlice, counted.timedFor.Seconds()))
	case opts.TimeEvery > 1:
		p.Notes = append(p.Notes, fmt.Sprintf("durations are measured on a random sample of 1 call in %d", opts.TimeEvery))
	}
	return p, nil
}

func withDefaults(o syscalls.Options) syscalls.Options {
	if o.Duration <= 0 {
		o.Duration = syscalls.DefaultDuration
	}
	if o.MaxKeys <= 0 {
		o.MaxKeys = syscalls.DefaultMaxKeys
	}
	o.TimeEvery = max(o.TimeEvery, 0)
	return o
}

// load loads the programs for pid. A failure of the host to load them is
// reported as syscalls.ErrNotSupported: whatever stops the programs from
// loading on this host, the caller's answer is the same (fall back to
// ptrace), and the error says why. The one exception is the aggregation
// table, whose size the caller chose (opts.MaxKeys): the kernel refusing
// to make it that big, or to find the memory for it, while it permits BPF,
// is the size's fault, and must not send the caller to a mechanism that
// stops the target at every call.
func load(pid int, opts syscalls.Options) (*syscallsObjects, error) {
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; later ones
	// to the cgroup, and this is a no-op.
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, notSupported("raising RLIMIT_MEMLOCK for BPF maps", err)
	}
	spec, err := loadSyscalls()
	if err != nil {
		return nil, err // the embedded object is corrupt: a bug, not the host
	}
	timeEvery := uint32(opts.TimeEvery)
	if sliced(opts) {
		timeEvery = 1 // every call inside a slice
	}
	vars := map[string]any{
		syscallsVarTargetTgid: uint32(pid),
		syscallsVarTimeEvery:  timeEvery,
		syscallsVarWantStacks: uint8(0),
		syscallsVarFutexNr:    ^uint32(0),
	}
	if nr := sysno.Number(runtime.GOARCH, "futex"); nr >= 0 {
		vars[syscallsVarFutexNr] = uint32(nr)
	}
	if opts.Stacks {
		vars[syscallsVarWantStacks] = uint8(1)
	}
	python := walksPython(opts)
	if python {
		l, err := opts.Chains.WalkLayout()
		if err == nil {
			err = l.Check()
		}
		if err != nil {
			return nil, fmt.Errorf("the Python walk's layout: %w", err)
		}
		vars[syscallsVarWantPython] = uint8(1)
		vars[syscallsVarPyLayout] = l.Value()
	}
	for name, v := range vars {
		if err := spec.Variables[name].Set(v); err != nil {
			return nil, fmt.Errorf("setting %s: %w", name, err)
		}
	}
	spec.Maps[syscallsMapStats].MaxEntries = uint32(opts.MaxKeys)
	spec.Maps[syscallsMapSpill].MaxEntries = uint32(opts.MaxKeys)
	spec.Maps[syscallsMapFdSyscalls].MaxEntries = uint32(max(sysno.Max(runtime.GOARCH), 1))
	// Maps the programs will not touch keep one entry: the stack map
	// preallocates all of its (4 MiB).
	if !opts.Stacks {
		spec.Maps[syscallsMapStacks].MaxEntries = 1
		spec.Maps[syscallsMapStackCounts].MaxEntries = 1
	}
	if opts.TimeEvery == 0 {
		spec.Maps[syscallsMapInflight].MaxEntries = 1
	}
	if !python {
		spec.Maps[syscallsMapPyThreads].MaxEntries = 1
		spec.Maps[syscallsMapPyChains].MaxEntries = 1
	}
	inflightMappable(spec)

	// The two tables sized by opts.MaxKeys are made first, so that the
	// kernel refusing their size is told apart from BPF being missing.
	// The collection takes clones of them: ours go when it is loaded.
	replace := map[string]*ebpf.Map{}
	for _, name := range []string{syscallsMapStats, syscallsMapSpill} {
		m, err := ebpf.NewMap(spec.Maps[name])
		if err != nil {
			for _, m := range replace {
				m.Close()
			}
			if bpfUnavailable(err) {
				return nil, notSupported("creating a BPF map", err)
			}
			return nil, fmt.Errorf("creating the BPF table of %d (thread, syscall, result, fd) keys (%s): %w", opts.MaxKeys, name, err)
		}
		replace[name] = m
		defer m.Close()
	}
	var objs syscallsObjects
	if err := spec.LoadAndAssign(&objs, &ebpf.CollectionOptions{MapReplacements: replace}); err != nil {
		return nil, notSupported("loading the BPF programs", err)
	}
	if err := fillFDSyscalls(objs.FdSyscalls); err != nil {
		objs.Close()
		return nil, fmt.Errorf("filling fd_syscalls: %w", err)
	}
	return &objs, nil
}

// walksPython says whether the programs read Python frame chains with
// the stacks.
func walksPython(opts syscalls.Options) bool { return opts.Stacks && opts.Chains != nil }

// pushThreads tells sys_enter the thread states of the target's Python
// threads (those of opts.Chains, read again), in place of those it had.
func pushThreads(objs *syscallsObjects, opts syscalls.Options) error {
	if !walksPython(opts) {
		return nil
	}
	threads := opts.Chains.WalkThreads()
	var stale []uint32
	var k uint32
	var v syscallsPyThread
	it := objs.PyThreads.Iterate()
	for it.Next(&k, &v) {
		if t, ok := threads[int(k)]; !ok || t != (pyebpf.Thread{TState: v.Tstate, Native: v.Native}) {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("listing the Python threads of the BPF program: %w", err)
	}
	for _, k := range stale {
		if err := objs.PyThreads.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("forgetting Python thread %d: %w", k, err)
		}
	}
	n := 0
	for tid, t := range threads {
		if n == pyebpf.MaxThreads {
			break
		}
		n++
		if err := objs.PyThreads.Update(uint32(tid), syscallsPyThread{Tstate: t.TState, Native: t.Native}, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("telling the BPF program of Python thread %d: %w", tid, err)
		}
	}
	return nil
}

func fillFDSyscalls(m *ebpf.Map) error {
	arch := runtime.GOARCH
	for nr := range sysno.Max(arch) {
		if !sysno.TakesFD(arch, nr) {
			continue
		}
		if err := m.Put(uint32(nr), uint8(1)); err != nil {
			return fmt.Errorf("syscall %d: %w", nr, err)
		}
	}
	return nil
}

// bpfUnavailable says whether err means that this host or these
// privileges cannot do BPF at all, rather than that a request was too big.
func bpfUnavailable(err error) bool {
	return errors.Is(err, os.ErrPermission) || errors.Is(err, ebpf.ErrNotSupported)
}

// notSupported wraps a failure to load or attach with the reason in the
// terms a user acts on.
func notSupported(what string, err error) error {
	var reason string
	var verr *ebpf.VerifierError
	switch {
	case errors.Is(err, os.ErrPermission):
		reason = "not permitted: BPF tracing needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN"
		if caps, cerr := sys.EffectiveCaps(); cerr == nil {
			if missing := caps.Missing(sys.CapBPF, sys.CapPerfmon); len(missing) > 0 && !caps.Has(sys.CapSysAdmin) {
				reason = fmt.Sprintf("%s (missing %v)", reason, missing)
			}
		}
	case errors.Is(err, ebpf.ErrNotSupported):
		return fmt.Errorf("%s: %w", what, &sys.NotSupportedError{Feature: "BPF with BTF-typed tracepoints and kernel BTF", Since: "5.5", Err: err})
	case errors.As(err, &verr):
		reason = "the kernel's verifier rejected the programs"
	default:
		reason = "failed"
	}
	return fmt.Errorf("%w: %s: %s: %w", syscalls.ErrNotSupported, what, reason, err)
}

// attachment is the programs attached to the syscall tracepoints.
type attachment struct{ enter, exit link.Link }

// attach attaches sys_exit, and sys_enter when it has work. sys_exit goes
// first and leaves last (Close): a sampled entry whose exit went unseen
// would be matched with a later call's exit and time both calls as one.
func attach(objs *syscallsObjects, opts syscalls.Options) (*attachment, error) {
	var a attachment
	if err := a.attachExit(objs); err != nil {
		return nil, err
	}
	if (opts.TimeEvery > 0 || opts.Stacks) && !sliced(opts) {
		if err := a.attachEnter(objs); err != nil {
			a.detachExit()
			return nil, err
		}
	}
	return &a, nil
}

// attachExit, attachEnter, detachExit and detachEnter attach and detach
// one program, for the slices of counting (countslice.go) and of timing
// (slicer) as for a whole window; detaching one not attached does nothing.
func (a *attachment) attachExit(objs *syscallsObjects) error {
	return attachTracepoint(&a.exit, objs.SysExit, "sys_exit")
}

func (a *attachment) attachEnter(objs *syscallsObjects) error {
	return attachTracepoint(&a.enter, objs.SysEnter, "sys_enter")
}

func (a *attachment) detachExit() { detach(&a.exit) }

func (a *attachment) detachEnter() { detach(&a.enter) }

func attachTracepoint(l *link.Link, p *ebpf.Program, name string) error {
	attached, err := link.AttachTracing(link.TracingOptions{Program: p})
	if err != nil {
		return notSupported("attaching to tracepoint "+name, err)
	}
	*l = attached
	return nil
}

func detach(l *link.Link) {
	if *l != nil {
		(*l).Close()
		*l = nil
	}
}

// Timing by slices. The entry probe that timing needs runs on every
// syscall of the host while it is attached, and costs a syscall-bound
// target about a tenth of its speed (bench/syscallcost). So unless every
// call is to be timed, or stacks need the probe throughout, it is attached
// only for one slice in every TimeEvery: every call made inside a slice is
// timed, about one call in TimeEvery overall, and the probe's cost is paid
// a TimeEvery-th of the time. Each slice starts at a random point of its
// period, so that periodic work cannot fall into step with it.
const timingSlice = 100 * time.Millisecond

func sliced(opts syscalls.Options) bool { return opts.TimeEvery > 1 && !opts.Stacks }

// slicer attaches sys_enter for one slice in each period until stop; it
// returns the time it was attached. A window shorter than a period gets one
// period as long as the window, with a slice of the same share.
func (a *attachment) slicer(objs *syscallsObjects, every int, window time.Duration, stop <-chan struct{}) (time.Duration, error) {
	period := timingSlice * time.Duration(every)
	if window < period {
		period = window
	}
	slice := period / time.Duration(every)
	var on time.Duration
	for {
		offset := time.Duration(rand.Int64N(int64(period - slice + 1)))
		select {
		case <-stop:
			return on, nil
		case <-time.After(offset):
		}
		if err := a.attachEnter(objs); err != nil {
			return on, err
		}
		began := time.Now()
		select {
		case <-stop:
		case <-time.After(slice):
		}
		a.detachEnter()
		on += time.Since(began)
		select {
		case <-stop:
			return on, nil
		case <-time.After(period - offset - slice):
		}
	}
}

// programs lists the IDs of the loaded programs, for the test hooks.
func (a *attachment) programs(objs *syscallsObjects) []ebpf.ProgramID {
	var ids []ebpf.ProgramID
	for _, p := range []*ebpf.Program{objs.SysExit, objs.SysEnter} {
		if info, err := p.Info(); err == nil {
			if id, ok := info.ID(); ok {
				ids = append(ids, id)
			}
		}
	}
	return ids
}

// Close detaches sys_enter, then sys_exit.
func (a *attachment) Close() {
	a.detachEnter()
	a.detachExit()
}

// wait returns when d has passed, ctx is done or the process has exited;
// it reports whether the process exited. It calls sweep at every poll.
func wait(ctx context.Context, watch *sys.ProcessWatch, d time.Duration, sweep func()) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return false
		case <-tick.C:
			if watch.Exited() {
				return true
			}
			sweep()
		}
	}
}

// kernelComm is the name the kernel side saw for a thread that is gone
// from /proc, or "?".
func kernelComm(objs *syscallsObjects, tid int) string {
	var c syscallsComm
	if err := objs.Comms.Lookup(uint32(tid), &c); err != nil {
		return "?"
	}
	return commString(c)
}

// readThreadNames adds the names of pid's threads to names, keeping those
// already there for threads that have gone since.
func readThreadNames(scanner *proc.Scanner, pid int, names map[int]string) {
	p, err := scanner.ReadProcess(pid, true)
	if err != nil {
		return // gone: the names read at the start stand
	}
	for _, th := range p.Threads {
		names[th.PID] = th.Comm
	}
}

// collect reads the maps, once the programs are detached, into p.
func (t *Tracer) collect(objs *syscallsObjects, opts syscalls.Options, sw *sweeper, misses0 uint64, p *syscalls.Profile) error {
	var drops [dropCounters]uint64
	for i := range drops {
		var perCPU []uint64
		if err := objs.Dropped.Lookup(uint32(i), &perCPU); err != nil {
			return fmt.Errorf("dropped[%d]: %w", i, err)
		}
		for _, n := range perCPU {
			drops[i] += n
		}
	}
	p.Dropped = drops[dropStats]
	// A run of sys_exit that the kernel skipped (it does not nest on one
	// CPU) is a call not counted either.
	if st, err := objs.SysExit.Stats(); err == nil && st.RecursionMisses > misses0 {
		n := st.RecursionMisses - misses0
		p.Dropped += n
		p.Notes = append(p.Notes, fmt.Sprintf("%d calls were not counted because the kernel skipped the BPF program (nested run)", n))
	}
	if drops[dropStats] > 0 {
		// stats is not preallocated, so an insert also fails when the
		// kernel's BPF allocator has no element ready, which a burst of
		// thousands of new keys (a thread going round thousands of
		// sockets) causes well below MaxKeys; those calls go to spill,
		// preallocated as big. A call is dropped only when both are
		// full.
		p.Notes = append(p.Notes, fmt.Sprintf("%d calls were not counted: the tables of (thread, syscall, result, fd) keys were full (more keys than --max-keys %d)", drops[dropStats], opts.MaxKeys))
	}

	var key syscallsKey
	var perCPU []syscallsStat
	it := objs.Stats.Iterate()
	for it.Next(&key, &perCPU) {
		p.Stats[statKey(key)] = sumStat(perCPU)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	// The calls each CPU's last key still had pending (the slot that
	// folds a run of one key into one update of the table), and those
	// whose key stats could not take.
	if err := addPending(objs, p.Stats); err != nil {
		return err
	}
	if err := addSpilled(objs, p.Stats); err != nil {
		return err
	}
	// The keys of threads that exited, moved out during the window.
	sw.merge(p)

	if opts.Stacks {
		if err := collectStacks(objs, t.proc, p); err != nil {
			return err
		}
		p.Notes = append(p.Notes, NoteFramePointers)
		if walksPython(opts) {
			p.Notes = append(p.Notes, NotePythonChains)
		}
		if n := drops[dropStackKeys] + drops[dropStackWalk]; n > 0 {
			p.Notes = append(p.Notes, fmt.Sprintf("%d sampled stacks were not recorded (walk failed or table full)", n))
		}
		if n := drops[dropPyWalk]; n > 0 {
			p.Notes = append(p.Notes, fmt.Sprintf("%d sampled stacks have no Python frames: their thread's frame chain could not be read in the kernel (a frame not in memory, a thread state reused)", n))
		}
		if n := drops[dropPyChains]; n > 0 {
			p.Notes = append(p.Notes, fmt.Sprintf("%d sampled stacks have no Python frames: more than %d distinct Python frame chains were seen", n, maxPyChains))
		}
	}
	return nil
}

// addPending adds to stats the calls that sys_exit counted in each CPU's
// last-key slot and had not yet added to the table: read after
// detaching, they are the tail of each CPU's last run of one key.
func addPending(objs *syscallsObjects, stats map[syscalls.Key]*syscalls.Stat) error {
	var perCPU []syscallsLast
	if err := objs.LastKey.Lookup(uint32(0), &perCPU); err != nil {
		return fmt.Errorf("last_key: %w", err)
	}
	for _, l := range perCPU {
		if l.Count == 0 {
			continue
		}
		k := statKey(l.Key)
		if stats[k] == nil {
			stats[k] = &syscalls.Stat{}
		}
		stats[k].Add(&syscalls.Stat{Count: l.Count, Bytes: l.RetSum})
	}
	return nil
}

// addSpilled adds to stats the calls counted in spill, the table of the
// keys stats could not take (its allocator ran dry in a burst of new
// keys, or it was full).
func addSpilled(objs *syscallsObjects, stats map[syscalls.Key]*syscalls.Stat) error {
	var key syscallsKey
	var v syscallsSpilled
	it := objs.Spill.Iterate()
	for it.Next(&key, &v) {
		k := statKey(key)
		if stats[k] == nil {
			stats[k] = &syscalls.Stat{}
		}
		stats[k].Add(&syscalls.Stat{Count: v.Count, Bytes: v.RetSum})
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("spill: %w", err)
	}
	return nil
}

// collectStacks fills p.Stacks with the most seen stacks of the most
// sampled (thread, syscall) pairs.
func collectStacks(objs *syscallsObjects, fs proc.FS, p *syscalls.Profile) error {
	type seen struct {
		id    uint32
		py    uint64
		count uint64
		scan  [16]uint64
	}
	pairs := map[syscalls.StackKey][]seen{}
	totals := map[syscalls.StackKey]uint64{}
	var key syscallsStackKey
	var value syscallsStackValue
	it := objs.StackCounts.Iterate()
	for it.Next(&key, &value) {
		pk := syscalls.StackKey{TID: int(key.Tid), Nr: int(key.Nr)}
		pairs[pk] = append(pairs[pk], seen{uint32(key.StackId), key.Py, value.Count, value.Scan})
		totals[pk] += value.Count
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("stack counts: %w", err)
	}
	order := make([]syscalls.StackKey, 0, len(pairs))
	for pk := range pairs {
		order = append(order, pk)
	}
	slices.SortFunc(order, func(a, b syscalls.StackKey) int {
		return cmp.Or(cmp.Compare(totals[b], totals[a]), cmp.Compare(a.TID, b.TID), cmp.Compare(a.Nr, b.Nr))
	})
	if len(order) > StackPairs {
		order = order[:StackPairs]
	}

	// The callers of frameless functions are checked against the
	// target's code, which needs it alive: after it exits, stacks keep
	// what the frame-pointer walk found.
	maps, err := fs.Maps(p.PID)
	mem, merr := fs.OpenMem(p.PID)
	canRecover := err == nil && merr == nil
	if merr == nil {
		defer mem.Close()
	}
	recovered := 0

	p.Stacks = map[syscalls.StackKey][]syscalls.StackSample{}
	for _, pk := range order {
		list := pairs[pk]
		slices.SortFunc(list, func(a, b seen) int {
			return cmp.Or(cmp.Compare(b.count, a.count), cmp.Compare(a.id, b.id), cmp.Compare(a.py, b.py))
		})
		for _, s := range list[:min(len(list), StacksPerPair)] {
			var pcs [127]uint64 // MAX_STACK_DEPTH
			if err := objs.Stacks.Lookup(s.id, &pcs); err != nil {
				continue // evicted: the stack map is smaller than the counts
			}
			n := 0
			for n < len(pcs) && pcs[n] != 0 {
				n++
			}
			stack := slices.Clone(pcs[:n])
			// Only a walk that found nothing past the innermost frame
			// gets a caller: where it found more, a frameless
			// function's caller is missing but the heuristic could
			// as well add a stale frame to a right stack.
			if canRecover && n == 1 {
				if caller, ok := leafCaller(runtime.GOARCH, s.scan[:], maps, mem); ok && caller != stack[0] {
					stack = append(stack, caller)
					recovered++
				}
			}
			sample := syscalls.StackSample{PCs: stack, Count: s.count}
			if s.py != 0 {
				// Absent only for a key the program failed to keep,
				// which it counts under 0 instead.
				rec := make([]byte, pyebpf.RecordSize)
				if err := objs.PyChains.Lookup(s.py, &rec); err == nil {
					sample.Chain = rec
				}
			}
			p.Stacks[pk] = append(p.Stacks[pk], sample)
		}
	}
	if recovered > 0 {
		p.Notes = append(p.Notes, NoteLeafCaller)
	}
	return nil
}
