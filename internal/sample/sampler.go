package sample

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/sys"
	"golang.org/x/sys/unix"
)

// Defaults and limits of Options.
const (
	DefaultFrequency  = 99 // Hz: off the 100 Hz of timers, so samples do not beat with them
	DefaultStackBytes = 16 << 10
	// MaxStackBytes is the largest user stack copy: the whole sample
	// record must fit in the u16 size of its header, so the kernel
	// refuses sample_stack_user of 64 KiB or more.
	MaxStackBytes     = 64<<10 - 8
	DefaultMaxSamples = 100_000
	DefaultMaxBytes   = 256 << 20

	// rescanInterval is how often the thread list is read, to follow
	// threads the target starts. A thread that lives less than this may
	// be missed entirely. A list of thousands of threads takes long to
	// read (20 ms at 20,000), so the interval is at least rescanCost
	// times what the last reading took: reading it costs at most 1/20
	// of a core.
	rescanInterval = 100 * time.Millisecond
	rescanCost     = 20
	// maxRescanInterval is how far the interval grows while the thread
	// list stays the same (doubling from rescanInterval at each reading
	// that finds no change): each reading wakes cpuwhy, and ten a second
	// were a third of its CPU while sampling a steady process; with the
	// rings waking it about once a second (ringGrowth), two readings a
	// second were still twice the wakeups of the drains. A thread
	// a sampled thread starts is not always left to the timer: the
	// kernel writes a fork record into the ring (the task bit), and the
	// drain that finds it reads the list at once; a steady process's
	// new thread is found within a second either way, and the interval
	// drops back to rescanInterval while the list changes.
	maxRescanInterval = time.Second
	// A CPU's ring holds at least minRingSamples of the largest
	// samples (512 KiB with the default stack copy, the size perf
	// record maps), and at higher frequencies 20 ms worth of them, up
	// to maxRingSamples (2 MiB). Half a ring is drained per wakeup: the
	// larger the ring, the fewer the wakeups.
	minRingSamples = 16
	maxRingSamples = 64
	// Where locked memory is not limited (CAP_IPC_LOCK, or
	// perf_event_paranoid -1), a ring is grown up to ringGrowth times
	// that size, within ringBudget over all CPUs, and the watermark
	// raised with it, so that the room left after it stays what half
	// the smaller ring left (as much time for the drain to be
	// scheduled): on a 2-CPU host at 99 Hz a ring of 2 MiB wakes cpuwhy
	// about once a second on a busy CPU instead of 6-7 times, which with
	// the Go runtime's threads behind each wakeup was most of its CPU
	// while sampling (perf record, with half as large a stack copy,
	// wakes about as rarely). On many CPUs the budget leaves the rings
	// as they were; so does a limited user (perf_event_mlock_kb per CPU
	// is about the smaller ring).
	ringGrowth = 4
	ringBudget = 8 << 20
)

// Options say what Record samples and for how long.
type Options struct {
	Frequency  int           // samples per second of CPU time per thread; 0 means DefaultFrequency
	Duration   time.Duration // 0: until ctx is done or the target exits
	StackBytes int           // user stack bytes copied per sample; 0 means DefaultStackBytes
	Kernel     bool          // record the kernel callchain of samples taken in the kernel
	MaxSamples int           // samples kept; more are counted in Dropped. 0 means DefaultMaxSamples
	MaxBytes   int64         // user stack bytes kept over all samples; 0 means DefaultMaxBytes
	FS         proc.FS       // where to read the target's thread list
	// Handle, when set, is given each sample as the rings are drained,
	// and nothing is kept: its Stack and Kernel are valid only during
	// the call. Without it, samples are kept in Recording.Samples, up to
	// MaxSamples and MaxBytes. Handle runs on the draining goroutine:
	// while it runs, the rings fill, and what overflows them the kernel
	// counts as lost.
	Handle func(*Sample)
	// Ready, when set, is called once the events of every thread are
	// open, before any is enabled: the set-up, which grows with the
	// thread count (a few hundred milliseconds at 5,000 threads), is
	// done, and the window starts when Ready returns. It may block: the
	// diagnosis lines its instruments up on it, so that each watches
	// the window the user asked for.
	Ready func()
	// Exec, when set, is told of each exec the target runs, on the
	// draining goroutine, before Handle is given any sample taken after
	// it (samples taken before it may still come after it: the rings of
	// other CPUs are drained in turn).
	Exec func(*Exec)
	// Prompt has the kernel wake the sampler at every sample, not when a
	// ring reaches its watermark (about once a second at 99 Hz): a consumer that
	// reads the target's live state when it resolves a sample (an
	// interpreter's current frames) must have it while it is fresh. It
	// costs a wakeup per sample.
	Prompt bool
	// Event, when set, is called with the file descriptor of each perf
	// event opened, before it is enabled: a consumer may attach a BPF
	// program to it (PERF_EVENT_IOC_SET_BPF) that runs at each of its
	// samples. The descriptor is the sampler's; it closes it.
	Event func(fd int)
	// Drained, when set, is called on the draining goroutine after each
	// drain has handed over its samples: a consumer that passes samples
	// to another goroutine can pass them as one batch per wakeup,
	// rather than waking that goroutine for every sample.
	Drained func()
}

// Recording is what Record saw.
type Recording struct {
	Samples   []Sample       // without Options.Handle
	Count     int            // samples read and kept or handled
	Lost      uint64         // samples the kernel dropped because a ring was full
	Dropped   uint64         // samples read but not kept, over MaxSamples or MaxBytes
	Throttled uint64         // times the kernel throttled an event for taking too much CPU
	Threads   map[int]string // every thread sampled, by TID, with its name
	Duration  time.Duration
	// KernelSampled is true when samples were taken while threads ran in
	// the kernel; false when perf_event_paranoid forced exclude_kernel,
	// and kernel time is then invisible.
	KernelSampled bool
	Notes         []string // degradations and how the recording ended
	// Start is when sampling began, on the clock of Sample.Time
	// (CLOCK_MONOTONIC).
	Start time.Duration
	// Execs are the execs the process ran while it was recorded, in
	// order, the first maxExecs of them; ExecCount counts them all.
	// Samples taken before one ran the program before it.
	Execs     []Exec
	ExecCount int
}

// Exec is an exec the target ran while it was recorded: from then on it
// runs another program, with other mappings, though its PID stays.
type Exec struct {
	Time     uint64 // on the clock of Sample.Time: samples before it ran the old program
	Comm     string // the name it took: the new program's file name, up to 15 bytes
	PrevComm string // the process's name before
	// Maps are the new program's mappings, read as soon as the exec is
	// seen (within a drain of it); nil when they could not be read, or
	// when the process ran exec again before they were (the mappings
	// read then are the later program's).
	Maps []proc.Mapping
}

// maxExecs bounds Recording.Execs: a process that runs exec in a loop
// must not grow the recording with a list of mappings each time.
const maxExecs = 64

// ErrNotSupported means the kernel cannot sample (no perf events, or no
// software cpu-clock event).
var ErrNotSupported = sys.ErrNotSupported

// ErrPermission means the kernel refused to sample the target: not root,
// no CAP_PERFMON, and perf_event_paranoid or ptrace access forbids it.
var ErrPermission = errors.New("not permitted to sample")

// ErrGone means the target does not exist.
var ErrGone = proc.ErrGone

// thread is a sampled thread: one event on each CPU, each writing to
// that CPU's ring.
type thread struct {
	evs []*sys.PerfEvent // by index in recorder.cpus
}

type recorder struct {
	pid  int
	opts Options
	attr sys.PerfEventAttr
	// cpus are the CPUs events are opened on, and rings the ring of
	// each, by index in cpus: the event of the first thread opened on
	// that CPU, kept open until the end even when its thread exits.
	cpus      []int
	rings     []*sys.PerfEvent
	layout    Layout
	ringPages int
	waiter    *sys.PerfWaiter // sleeps until a ring reaches its watermark
	threads   map[int]*thread
	tasks     *proc.TaskList // the target's /proc/PID/task, held open
	rec       *Recording
	keptBytes int64
	tids      []int
	openFull  bool // stopped opening events after EMFILE
	started   bool // the window has started: new events open enabled
	fileLimit uint64
	heads     []uint64 // of each ring, where a drain stops
	execs     []Comm   // exec records found by the drain under way
	comm      string   // the process's name, for Exec.PrevComm
	forked    bool     // a drain found a thread started: read the list now
	changed   bool     // the last rescan opened or closed events
}

// fileSlack is what the limit on open files keeps beyond the events: for
// the target's files cpuwhy opens while it samples (its objects, /proc).
const fileSlack = 512

// Record samples every thread of process pid on CPU at opts.Frequency
// until opts.Duration has passed, ctx is done, or the target exits (which
// ends the recording with a note, not an error). Threads the target
// starts while it runs are picked up within about 100 ms.
func Record(ctx context.Context, pid int, opts Options) (*Recording, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &recorder{
		pid:     pid,
		opts:    opts,
		threads: map[int]*thread{},
		rec:     &Recording{Threads: map[int]string{}, KernelSampled: true},
	}
	if r.cpus, err = sys.OnlineCPUs(); err != nil || len(r.cpus) == 0 {
		return nil, fmt.Errorf("sampling process %d: listing the online CPUs: %w (%w)", pid, ErrNotSupported, err)
	}
	r.rings = make([]*sys.PerfEvent, len(r.cpus))
	r.setAttr()
	watch, err := sys.WatchProcess(pid)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil, fmt.Errorf("sampling process %d: %w", pid, ErrGone)
		}
		return nil, fmt.Errorf("sampling process %d: %w", pid, err)
	}
	defer watch.Close()
	// The waiter sleeps on the rings (each added as it is made) and on
	// the target's exit.
	waiter, err := sys.NewPerfWaiter()
	if err != nil {
		return nil, fmt.Errorf("sampling process %d: %w", pid, err)
	}
	defer waiter.Close()
	if fd := watch.FD(); fd >= 0 {
		if err := waiter.AddFD(fd); err != nil {
			return nil, fmt.Errorf("sampling process %d: %w", pid, err)
		}
	}
	r.waiter = waiter
	defer r.closeAll()
	if r.tasks, err = opts.FS.OpenTasks(pid); err != nil {
		return nil, fmt.Errorf("sampling process %d: %w", pid, err)
	}
	defer r.tasks.Close()

	if err := r.rescan(); err != nil {
		return nil, err
	}
	if len(r.threads) == 0 && r.openFull {
		return nil, fmt.Errorf("sampling process %d: %s", pid, r.rec.Notes[len(r.rec.Notes)-1])
	}
	if len(r.threads) == 0 {
		return nil, fmt.Errorf("sampling process %d: no thread could be sampled: %w", pid, ErrGone)
	}
	r.comm = r.readComm(pid)
	defer context.AfterFunc(ctx, waiter.Wake)()
	if opts.Ready != nil {
		opts.Ready()
	}
	// The window runs from before the first event is enabled to before
	// the first is disabled, and both go in the same order, so each
	// event samples for the window asked, however many there are
	// (enabling 10,000 takes about 100 ms).
	start := time.Now()
	r.rec.Start = sys.Monotonic()
	r.setEnabled(true)
	interval := rescanInterval
	nextScan := start.Add(interval)
	var scanTook time.Duration
loop:
	for {
		now := time.Now()
		if ctx.Err() != nil {
			r.note("stopped: %v", context.Cause(ctx))
			break
		}
		// A steady list is due for a reading from half an interval
		// before nextScan to half after: a drain in that span reads it,
		// and the timer wakes the sampler for it only at the end, so
		// that on a busy target the readings ride on the drains (about
		// one a second each) instead of waking it as often again.
		var slack time.Duration
		if interval >= maxRescanInterval {
			slack = interval / 2
		}
		wait := nextScan.Add(slack).Sub(now)
		if opts.Duration > 0 {
			left := start.Add(opts.Duration).Sub(now)
			if left <= 0 {
				break
			}
			wait = min(wait, left)
		}
		// Asleep until a ring reaches its watermark, the target exits, ctx is
		// done, or the thread list is due to be read again.
		if _, err := waiter.Wait(max(wait, 0)); err != nil {
			return nil, fmt.Errorf("sampling process %d: %w", pid, err)
		}
		now = time.Now()
		r.drainAll()
		if watch.Exited() {
			r.note("target %d exited after %v", pid, now.Sub(start).Round(time.Millisecond))
			break loop
		}
		if r.forked || !now.Before(nextScan.Add(-slack)) {
			r.forked = false
			err := r.rescan()
			scanTook = time.Since(now)
			if r.changed {
				interval = rescanInterval
			} else {
				interval = min(2*interval, maxRescanInterval)
			}
			nextScan = now.Add(max(interval, rescanCost*scanTook))
			if err != nil {
				if errors.Is(err, proc.ErrGone) {
					r.note("target %d exited after %v", pid, now.Sub(start).Round(time.Millisecond))
					break loop
				}
				return nil, err
			}
		}
	}
	r.rec.Duration = time.Since(start)
	r.setEnabled(false)
	r.drainAll()
	r.refreshNames()
	return r.rec, nil
}

func (o Options) withDefaults() (Options, error) {
	if o.Frequency == 0 {
		o.Frequency = DefaultFrequency
	}
	if o.Frequency < 0 {
		return o, fmt.Errorf("sampling frequency %d Hz: must be positive", o.Frequency)
	}
	if o.StackBytes == 0 {
		o.StackBytes = DefaultStackBytes
	}
	if o.StackBytes < 0 || o.StackBytes > MaxStackBytes {
		return o, fmt.Errorf("user stack copy of %d bytes: must be between 8 and %d", o.StackBytes, MaxStackBytes)
	}
	o.StackBytes &^= 7 // the kernel wants it u64-aligned
	if o.MaxSamples == 0 {
		o.MaxSamples = DefaultMaxSamples
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	return o, nil
}

func (r *recorder) setAttr() {
	st := uint64(sys.PerfSampleTID | sys.PerfSampleTime | sys.PerfSampleIP | sys.PerfSamplePeriod |
		sys.PerfSampleRegsUser | sys.PerfSampleStackUser)
	if r.opts.Kernel {
		st |= sys.PerfSampleCallchain
	}
	r.attr = sys.PerfEventAttr{
		Type:   sys.PerfTypeSoftware,
		Config: sys.PerfCountSWCPUClock,
		// A period of CPU time, in nanoseconds: cpu-clock counts them,
		// so the period is exact and needs none of frequency mode's
		// adjustment, which starts every event at a period of one and
		// made thousands of new events burst at once.
		Sample:      uint64(time.Second) / uint64(r.opts.Frequency),
		Sample_type: st,
		// We unwind user stacks ourselves from the registers and the
		// stack copy; the kernel's user callchain needs frame pointers.
		// Events open disabled until the window starts. The task bit
		// tells of threads started (see maxRescanInterval).
		Bits:              sys.PerfBitDisabled | sys.PerfBitExcludeHv | sys.PerfBitExcludeCallchainUser | execBits | sys.PerfBitTask,
		Clockid:           sys.ClockMonotonic,
		Sample_regs_user:  regsMask(),
		Sample_stack_user: uint32(r.opts.StackBytes),
	}
	r.layout = archLayout(st, uint32(r.opts.StackBytes))
	r.layout.SampleIDAll = true
	// A ring holds the largest samples of 20 ms at the frequency (at
	// least minRingSamples, at most maxRingSamples), rounded up to a
	// power of two of pages. A ring serves one CPU, where one thread
	// runs at a time, each sampled at the frequency of its CPU time: it
	// fills no faster than one thread's ring would.
	largest := r.opts.StackBytes + 8*maxCallchain + 256
	page := os.Getpagesize()
	samples := min(max(r.opts.Frequency/50, minRingSamples), maxRingSamples)
	basePages := 1 // the ring's size before growth (ringGrowth)
	for basePages*page < samples*largest {
		basePages *= 2
	}
	// Not with a BPF program at each sample (Options.Event): what it
	// writes to a buffer of its own is matched to the samples as they
	// are handed over, and must not wait a second's drain in it. Nor
	// when woken at every sample (Options.Prompt): a larger ring would
	// only lock memory.
	r.ringPages = grownRing(basePages, page, len(r.cpus), unlimitedLocking() && r.opts.Event == nil && !r.opts.Prompt)
	// The kernel wakes the waiter when a ring is filled up to its
	// watermark (in bytes), as perf record sleeps in poll: cpuwhy wakes
	// only when there are samples to drain, about once a second at 99 Hz
	// on a busy CPU with grown rings (every 150 ms with the smaller
	// ones) and never for an idle one, and half the smaller ring of room
	// is left for the time the drain takes to be scheduled. Draining on
	// a timer instead woke it 16 times a second however few the
	// samples.
	r.attr.Bits |= sys.PerfBitWatermark
	r.attr.Wakeup = watermark(r.ringPages, basePages, page)
	if r.opts.Prompt {
		// wakeup_events: a wakeup for every sample.
		r.attr.Bits &^= sys.PerfBitWatermark
		r.attr.Wakeup = 1
	}
}

// grownRing is the size in pages of the rings of cpus CPUs, from base
// pages: grown up to ringGrowth times within ringBudget when locked
// memory is unlimited.
func grownRing(base, page, cpus int, unlimited bool) int {
	pages := base
	for unlimited && pages < ringGrowth*base && 2*pages*page*cpus <= ringBudget {
		pages *= 2
	}
	return pages
}

// watermark is the fill in bytes at which the kernel wakes the waiter:
// half the base ring of room left after it.
func watermark(pages, base, page int) uint32 { return uint32(pages*page - base*page/2) }

// unlimitedLocking reports whether the kernel lets cpuwhy lock rings
// beyond the user's allowance (perf_mmap: CAP_IPC_LOCK, or
// perf_event_paranoid -1).
func unlimitedLocking() bool {
	if caps, err := sys.EffectiveCaps(); err == nil && caps.Has(sys.CapIPCLock) {
		return true
	}
	p, err := sys.PerfEventParanoid()
	return err == nil && p < 0
}

// execBits have the kernel report an exec (comm, comm_exec) with its time
// (sample_id_all) on the clock of the samples, CLOCK_MONOTONIC
// (use_clockid), so that each sample is named by the mappings of the
// program it ran and the exec placed in the window.
const execBits = sys.PerfBitComm | sys.PerfBitCommExec | sys.PerfBitSampleIDAll | sys.PerfBitUseClockID

// withoutExecs stops asking for exec records, for a kernel that refuses
// them (comm_exec came in Linux 3.16, use_clockid in 4.1).
func (r *recorder) withoutExecs(cause error) {
	r.attr.Bits &^= execBits
	r.attr.Clockid = 0
	r.layout.SampleIDAll = false
	r.note("kernel refused to report execs (%v): an exec during the window is not followed, and what ran before it is named by the mappings of the program after it", cause)
}

// excludeKernel turns kernel-mode samples off, for when the kernel
// refuses them.
func (r *recorder) excludeKernel(cause error) {
	r.attr.Bits |= sys.PerfBitExcludeKernel
	r.attr.Sample_type &^= sys.PerfSampleCallchain
	r.layout.SampleType = r.attr.Sample_type
	r.rec.KernelSampled = false
	paranoid := "unknown"
	if v, err := sys.PerfEventParanoid(); err == nil {
		paranoid = strconv.Itoa(v)
	}
	r.note("kernel refused samples in kernel mode (%v; perf_event_paranoid=%s): time spent in the kernel is not sampled and there are no kernel callchains", cause, paranoid)
}

// rescan opens events for threads not seen before and closes those of
// threads that are gone. It returns an error matching proc.ErrGone when
// the process is gone.
func (r *recorder) rescan() error {
	var err error
	if r.tids, err = r.tasks.List(r.tids[:0]); err != nil {
		return err
	}
	r.changed = false
	alive := make(map[int]bool, len(r.tids))
	for _, tid := range r.tids {
		alive[tid] = true
	}
	for tid, th := range r.threads {
		if alive[tid] {
			continue
		}
		if tid != r.pid && alive[r.pid] && !th.evs[0].Exited() {
			// The task runs on under another TID, which only exec
			// gives: a thread other than the main one ran it, and
			// the kernel made it the main thread, with the PID as its
			// TID (de_thread). Its events follow it and stay; the old
			// main thread's, on a task that is gone, close.
			if old := r.threads[r.pid]; old != nil {
				r.closeThread(old)
			}
			r.threads[r.pid] = th
			delete(r.threads, tid)
			continue
		}
		r.closeThread(th)
		delete(r.threads, tid)
		r.changed = true
	}
	// An event per thread and CPU: the limit on open files is raised to
	// hold them where it may be (perf asks the user to, with ulimit).
	// Where it may not, the threads that fit are sampled, the busiest
	// first, and a note says how many were left out.
	var fresh []int
	for _, tid := range r.tids {
		if _, ok := r.threads[tid]; !ok && !r.openFull {
			fresh = append(fresh, tid)
		}
	}
	if len(fresh) > 0 {
		want := uint64((len(r.threads)+len(fresh))*len(r.cpus) + fileSlack)
		if want > r.fileLimit {
			if r.fileLimit, err = sys.EnsureFileLimit(want); err != nil {
				r.note("%v", err)
			}
		}
		room := (int(r.fileLimit)-fileSlack)/len(r.cpus) - len(r.threads)
		if room < len(fresh) {
			fresh = r.busiestFirst(fresh)[:max(room, 0)]
			r.openFull = true
			r.note("sampled %d of %d threads, the busiest by CPU time so far: an event per thread and CPU needs %d open files, and the limit is %d (raise it with ulimit -n, or give cpuwhy CAP_SYS_RESOURCE)",
				len(r.threads)+len(fresh), len(r.tids), want-fileSlack, r.fileLimit)
		}
	}
	r.changed = r.changed || len(fresh) > 0
	for _, tid := range fresh {
		if err := r.open(tid); err != nil {
			return err
		}
	}
	return nil
}

// open starts sampling thread tid: an event on each CPU, each writing to
// that CPU's ring (the first event opened on a CPU makes its ring). A
// thread that exits first is skipped; only errors that would hit every
// thread are returned.
func (r *recorder) open(tid int) error {
	th := &thread{evs: make([]*sys.PerfEvent, 0, len(r.cpus))}
	for i := 0; i < len(r.cpus); {
		var ev *sys.PerfEvent
		var err error
		if r.rings[i] == nil {
			ev, err = sys.OpenPerfEvent(&r.attr, tid, r.cpus[i], r.ringPages)
		} else {
			ev, err = sys.OpenPerfEventInto(&r.attr, tid, r.cpus[i], r.rings[i])
		}
		if err == nil && r.rings[i] == nil {
			if err = r.waiter.Add(ev); err != nil {
				ev.Close()
				r.closeThread(th)
				return fmt.Errorf("sampling thread %d of %d: %w", tid, r.pid, err)
			}
			r.rings[i] = ev
		}
		if err == nil {
			if r.opts.Event != nil {
				r.opts.Event(ev.FD())
			}
			th.evs = append(th.evs, ev)
			i++
			continue
		}
		// What is open of this thread is closed on every way out but
		// success, except the rings, which other threads share.
		r.closeThread(th)
		switch {
		case errors.Is(err, unix.ESRCH):
			return nil
		case errors.Is(err, sys.ErrPerfRing):
			// Out of locked memory for rings (perf_event_mlock_kb when
			// not root): sample the threads we have rather than none.
			r.openFull = true
			r.note("stopped opening events at %d threads: %v", len(r.threads), err)
			return nil
		case errors.Is(err, unix.EINVAL) && r.attr.Bits&execBits != 0:
			r.withoutExecs(err)
			th, i = &thread{evs: th.evs[:0]}, 0
			continue
		case (errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM)) && r.attr.Bits&sys.PerfBitExcludeKernel == 0:
			r.excludeKernel(err)
			th, i = &thread{evs: th.evs[:0]}, 0
			continue
		case errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM):
			return fmt.Errorf("sampling thread %d of %d: %w (%w)", tid, r.pid, ErrPermission, err)
		case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS):
			return fmt.Errorf("sampling thread %d of %d: %w", tid, r.pid, &sys.NotSupportedError{Feature: "perf_event_open with the cpu-clock event", Since: "2.6.32", Err: err})
		case errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) || errors.Is(err, unix.ENOMEM):
			// Out of fds or locked memory for rings: sample the
			// threads we have rather than none.
			r.openFull = true
			r.note("stopped opening events at %d threads: %v", len(r.threads), err)
			return nil
		default:
			return fmt.Errorf("sampling thread %d of %d: %w", tid, r.pid, err)
		}
	}
	if r.started {
		for _, ev := range th.evs {
			ev.Enable()
		}
	}
	r.threads[tid] = th
	r.rec.Threads[tid] = r.readComm(tid)
	return nil
}

// busiestFirst orders tids by the CPU time each has used, most first,
// running threads ahead of all: when not every thread can be sampled,
// those that work are the ones worth it.
func (r *recorder) busiestFirst(tids []int) []int {
	p, err := proc.NewScanner(r.opts.FS).ReadProcess(r.pid, true)
	if err != nil {
		return tids
	}
	weight := make(map[int]uint64, len(p.Threads))
	for _, t := range p.Threads {
		weight[t.PID] = t.UTime + t.STime
		if t.State == 'R' {
			weight[t.PID] += 1 << 62
		}
	}
	slices.SortStableFunc(tids, func(a, b int) int { return cmp.Compare(weight[b], weight[a]) })
	return tids
}

// closeThread closes the events of a thread that are not rings.
func (r *recorder) closeThread(th *thread) {
	for i, ev := range th.evs {
		if ev != r.rings[i] {
			ev.Close()
		}
	}
}

// setEnabled enables or disables every event, in the order of thread
// IDs both ways. Enabled, those opened later open enabled.
func (r *recorder) setEnabled(on bool) {
	r.started = on
	tids := slices.Sorted(maps.Keys(r.threads))
	for _, tid := range tids {
		for _, ev := range r.threads[tid].evs {
			if on {
				ev.Enable()
			} else {
				ev.Disable()
			}
		}
	}
}

func (r *recorder) readComm(tid int) string {
	var buf [32]byte
	n, err := sys.ReadProcFile(r.opts.FS.TaskPath(r.pid, tid, "comm"), buf[:])
	if err != nil {
		return ""
	}
	return string(bytes.TrimSuffix(buf[:n], []byte("\n")))
}

// refreshNames rereads the names of live threads, which may have renamed
// themselves after we first saw them.
func (r *recorder) refreshNames() {
	for tid := range r.threads {
		if name := r.readComm(tid); name != "" {
			r.rec.Threads[tid] = name
		}
	}
}

// drainAll reads every ring up to a line drawn across them all at once.
// Execs come first: the rings are scanned for them (Peek), and each is
// told, before the samples are read, so that no sample taken after an
// exec is handed over before it, whichever ring holds which.
func (r *recorder) drainAll() {
	r.heads = r.heads[:0]
	for _, ring := range r.rings {
		var head uint64
		if ring != nil {
			head = ring.Head()
		}
		r.heads = append(r.heads, head)
	}
	if r.attr.Bits&sys.PerfBitCommExec != 0 {
		r.execs = r.execs[:0]
		for i, ring := range r.rings {
			if ring != nil {
				ring.Peek(r.heads[i], recordComm, r.peek)
			}
		}
		if len(r.execs) > 0 {
			r.ranExec()
		}
	}
	for i, ring := range r.rings {
		if ring != nil {
			lost := ring.Lost()
			ring.ReadTo(r.heads[i], r.handle)
			r.rec.Lost += ring.Lost() - lost
		}
	}
	if r.opts.Drained != nil {
		r.opts.Drained()
	}
}

// peek keeps the exec records of a ring.
func (r *recorder) peek(rec []byte) {
	if c, err := ParseComm(rec, r.layout); err == nil && c.Exec && c.PID == r.pid {
		r.execs = append(r.execs, c)
	}
}

// ranExec tells of the execs a drain found, in the order they ran. The
// mappings read now are those of the last: the earlier ones' are gone.
func (r *recorder) ranExec() {
	slices.SortStableFunc(r.execs, func(a, b Comm) int { return cmp.Compare(a.Time, b.Time) })
	maps, _ := r.opts.FS.Maps(r.pid)
	for i, c := range r.execs {
		e := Exec{Time: c.Time, Comm: c.Comm, PrevComm: r.comm}
		if i == len(r.execs)-1 {
			e.Maps = maps
		}
		r.comm = c.Comm
		// The thread that ran it is the main one now, and so named.
		r.rec.Threads[r.pid] = c.Comm
		r.rec.ExecCount++
		if len(r.rec.Execs) < maxExecs {
			r.rec.Execs = append(r.rec.Execs, e)
		}
		if r.opts.Exec != nil {
			r.opts.Exec(&e)
		}
	}
	if r.rec.ExecCount > maxExecs && r.rec.ExecCount-len(r.execs) <= maxExecs {
		r.note("process %d ran exec more than %d times: the recording lists the first %d", r.pid, maxExecs, maxExecs)
	}
}

func (r *recorder) handle(rec []byte) {
	typ, _ := RecordType(rec)
	switch typ {
	case recordThrottle:
		r.rec.Throttled++
	case recordFork:
		// u32 pid, ppid, tid, ptid after the header: a thread of the
		// target started (a child process has another pid).
		if len(rec) >= 16 && int(binary.NativeEndian.Uint32(rec[8:])) == r.pid {
			r.forked = true
		}
	case recordSample:
		s, err := ParseSample(rec, r.layout)
		if err != nil {
			r.rec.Dropped++
			return
		}
		if r.opts.Handle != nil {
			r.rec.Count++
			r.opts.Handle(&s)
			return
		}
		if len(r.rec.Samples) >= r.opts.MaxSamples || r.keptBytes+int64(len(s.Stack)) > r.opts.MaxBytes {
			r.rec.Dropped++
			return
		}
		if s.Kernel != nil {
			s.Kernel = append([]uint64(nil), s.Kernel...)
		}
		if s.Stack != nil {
			s.Stack = bytes.Clone(s.Stack)
			r.keptBytes += int64(len(s.Stack))
		}
		r.rec.Samples = append(r.rec.Samples, s)
		r.rec.Count++
	}
}

func (r *recorder) closeAll() {
	for tid, th := range r.threads {
		r.closeThread(th)
		delete(r.threads, tid)
	}
	for i, ring := range r.rings {
		if ring != nil {
			ring.Close()
			r.rings[i] = nil
		}
	}
}

func (r *recorder) note(format string, args ...any) {
	r.rec.Notes = append(r.rec.Notes, fmt.Sprintf(format, args...))
}
