package sample

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
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

	// minPoll bounds how often the rings are drained; see pollEvery.
	minPoll = time.Millisecond
	// rescanInterval is how often the thread list is read, to follow
	// threads the target starts. A thread that lives less than this may
	// be missed entirely.
	rescanInterval = 100 * time.Millisecond
	// A thread's ring holds at least minRingSamples of the largest
	// samples, and at higher frequencies 20 ms worth of them, up to
	// maxRingSamples (about 2 MiB a thread with the default stack copy).
	minRingSamples = 8
	maxRingSamples = 64
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
}

// Recording is what Record saw.
type Recording struct {
	Samples   []Sample
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
}

// ErrNotSupported means the kernel cannot sample (no perf events, or no
// software cpu-clock event).
var ErrNotSupported = errors.New("perf sampling not supported")

// ErrPermission means the kernel refused to sample the target: not root,
// no CAP_PERFMON, and perf_event_paranoid or ptrace access forbids it.
var ErrPermission = errors.New("not permitted to sample")

// ErrGone means the target does not exist.
var ErrGone = proc.ErrGone

type thread struct {
	ev   *sys.PerfEvent
	name string
}

type recorder struct {
	pid       int
	opts      Options
	attr      sys.PerfEventAttr
	layout    Layout
	ringPages int
	pollEvery time.Duration // how often the rings are drained
	threads   map[int]*thread
	rec       *Recording
	keptBytes int64
	dirents   []byte
	tids      []int
	openFull  bool // stopped opening events after EMFILE
}

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
		dirents: make([]byte, 32<<10),
	}
	r.setAttr()
	watch, err := sys.WatchProcess(pid)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil, fmt.Errorf("sampling process %d: %w", pid, ErrGone)
		}
		return nil, fmt.Errorf("sampling process %d: %w", pid, err)
	}
	defer watch.Close()
	defer r.closeAll()

	start := time.Now()
	if err := r.rescan(); err != nil {
		return nil, err
	}
	if len(r.threads) == 0 && r.openFull {
		return nil, fmt.Errorf("sampling process %d: %s", pid, r.rec.Notes[len(r.rec.Notes)-1])
	}
	if len(r.threads) == 0 {
		return nil, fmt.Errorf("sampling process %d: no thread could be sampled: %w", pid, ErrGone)
	}
	var deadline <-chan time.Time
	if opts.Duration > 0 {
		t := time.NewTimer(opts.Duration)
		defer t.Stop()
		deadline = t.C
	}
	poll := time.NewTicker(r.pollEvery)
	defer poll.Stop()
	lastScan := time.Now()
loop:
	for {
		select {
		case <-ctx.Done():
			r.note("stopped: %v", context.Cause(ctx))
			break loop
		case <-deadline:
			break loop
		case now := <-poll.C:
			r.drainAll()
			if watch.Exited() {
				r.note("target %d exited after %v", pid, now.Sub(start).Round(time.Millisecond))
				break loop
			}
			if now.Sub(lastScan) >= rescanInterval {
				lastScan = now
				if err := r.rescan(); err != nil {
					if errors.Is(err, proc.ErrGone) {
						r.note("target %d exited after %v", pid, now.Sub(start).Round(time.Millisecond))
						break loop
					}
					return nil, err
				}
			}
		}
	}
	for _, th := range r.threads {
		th.ev.Disable()
	}
	r.rec.Duration = time.Since(start)
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
		Type:        sys.PerfTypeSoftware,
		Config:      sys.PerfCountSWCPUClock,
		Sample:      uint64(r.opts.Frequency),
		Sample_type: st,
		// We unwind user stacks ourselves from the registers and the
		// stack copy; the kernel's user callchain needs frame pointers.
		Bits:              sys.PerfBitFreq | sys.PerfBitExcludeHv | sys.PerfBitExcludeCallchainUser,
		Sample_regs_user:  regsMask(),
		Sample_stack_user: uint32(r.opts.StackBytes),
		Wakeup:            1,
	}
	r.layout = archLayout(st, uint32(r.opts.StackBytes))
	// A ring holds the largest samples of 20 ms at the frequency (at
	// least minRingSamples, at most maxRingSamples), rounded up to a
	// power of two of pages.
	largest := r.opts.StackBytes + 8*maxCallchain + 256
	page := os.Getpagesize()
	samples := min(max(r.opts.Frequency/50, minRingSamples), maxRingSamples)
	r.ringPages = 1
	for r.ringPages*page < samples*largest {
		r.ringPages *= 2
	}
	// The rings are drained when a ring, sampling at the frequency, is
	// at most half full of the largest samples: none is lost, and there
	// are no more wakeups than that, since each costs cpuwhy more (the Go
	// runtime parking and waking threads) than draining the samples it
	// finds. At 99 Hz that is about every 60 ms rather than every 20 ms,
	// which cut cpuwhy's CPU while sampling from 1.6% to 0.8% of a core
	// (bench/recordcost); at 2 kHz every 12 ms, where 20 ms lost 63% of
	// the samples. At most every rescanInterval, so new threads are
	// found as soon.
	half := float64(r.ringPages*page/largest) / 2
	r.pollEvery = min(max(time.Duration(half/float64(r.opts.Frequency)*float64(time.Second)), minPoll), rescanInterval)
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
	dir, err := sys.OpenDir(r.opts.FS.PIDPath(r.pid, "task"))
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("listing threads of %d: %w", r.pid, proc.ErrGone)
		}
		return fmt.Errorf("listing threads of %d: %w", r.pid, err)
	}
	r.tids, err = dir.Numbers(r.tids[:0], r.dirents)
	dir.Close()
	if err != nil {
		return fmt.Errorf("listing threads of %d: %w", r.pid, err)
	}
	alive := make(map[int]bool, len(r.tids))
	for _, tid := range r.tids {
		alive[tid] = true
		if _, ok := r.threads[tid]; ok || r.openFull {
			continue
		}
		if err := r.open(tid); err != nil {
			return err
		}
	}
	for tid, th := range r.threads {
		if !alive[tid] {
			r.drain(th)
			th.ev.Close()
			delete(r.threads, tid)
		}
	}
	return nil
}

// open starts sampling thread tid. A thread that exits first is skipped;
// only errors that would hit every thread are returned.
func (r *recorder) open(tid int) error {
	for {
		ev, err := sys.OpenPerfEvent(&r.attr, tid, -1, r.ringPages)
		switch {
		case err == nil:
			name := r.readComm(tid)
			r.threads[tid] = &thread{ev: ev, name: name}
			r.rec.Threads[tid] = name
			return nil
		case errors.Is(err, unix.ESRCH):
			return nil
		case errors.Is(err, sys.ErrPerfRing):
			// Out of locked memory for rings (perf_event_mlock_kb when
			// not root): sample the threads we have rather than none.
			r.openFull = true
			r.note("stopped opening events at %d threads: %v", len(r.threads), err)
			return nil
		case (errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM)) && r.attr.Bits&sys.PerfBitExcludeKernel == 0:
			r.excludeKernel(err)
			continue
		case errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM):
			return fmt.Errorf("sampling thread %d of %d: %w (%w)", tid, r.pid, ErrPermission, err)
		case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS):
			return fmt.Errorf("sampling thread %d of %d: %w (%w)", tid, r.pid, ErrNotSupported, err)
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

func (r *recorder) drainAll() {
	for _, th := range r.threads {
		r.drain(th)
	}
}

func (r *recorder) drain(th *thread) {
	lost := th.ev.Lost()
	th.ev.Read(r.handle)
	r.rec.Lost += th.ev.Lost() - lost
}

func (r *recorder) handle(rec []byte) {
	typ, _ := RecordType(rec)
	switch typ {
	case recordThrottle:
		r.rec.Throttled++
	case recordSample:
		s, err := ParseSample(rec, r.layout)
		if err != nil {
			r.rec.Dropped++
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
	}
}

func (r *recorder) closeAll() {
	for tid, th := range r.threads {
		th.ev.Close()
		delete(r.threads, tid)
	}
}

func (r *recorder) note(format string, args ...any) {
	r.rec.Notes = append(r.rec.Notes, fmt.Sprintf(format, args...))
}
