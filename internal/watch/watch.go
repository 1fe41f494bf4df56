package watch

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/sys"
	"github.com/cpuwhy/cpuwhy/internal/taskiter"
)

// Defaults of Options.
const (
	DefaultCPU      = 80.0
	DefaultFor      = 5 * time.Second
	DefaultCooldown = 10 * time.Minute
	DefaultInterval = time.Second
	DefaultQueue    = 4
)

// Options shape a watch.
type Options struct {
	FS proc.FS
	// CPU is the threshold, in percent of one core (100 = one core).
	CPU float64
	// For is how long a process must stay at or above CPU.
	For time.Duration
	// Cooldown is how long after a trigger its process is not triggered
	// again.
	Cooldown time.Duration
	// Interval is the time between two scans of /proc.
	Interval time.Duration
	// Queue is how many triggers may wait while a diagnosis runs.
	Queue int
	// Match, when set, says whether a process is watched at all (a
	// target, a container, a name); it is asked only about a process
	// over the threshold, so it may be slow.
	Match func(pid int, comm string) bool
	// Self is a process never triggered (cpuwhy's own); 0: os.Getpid().
	Self int
	// Procs, when set, lists every process's CPU in one read (a BPF
	// program: taskiter.Procs) for the scans, in place of a stat file
	// per process; it must list the PIDs FS names (CheckLister). When a
	// listing fails, the watch tells Handler.ScanFailed once and reads
	// /proc from then on.
	Procs Lister
}

// Lister lists the CPU of every user process, sorted by PID; it is used
// by one goroutine at a time.
type Lister interface {
	List([]taskiter.ProcTime) ([]taskiter.ProcTime, error)
}

func (o Options) withDefaults() Options {
	if o.CPU <= 0 {
		o.CPU = DefaultCPU
	}
	if o.For <= 0 {
		o.For = DefaultFor
	}
	if o.Cooldown < 0 {
		o.Cooldown = 0
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Queue <= 0 {
		o.Queue = DefaultQueue
	}
	if o.Self == 0 {
		o.Self = os.Getpid()
	}
	return o
}

// Trigger is a process that stayed at or above the threshold.
type Trigger struct {
	PID       int
	StartTime uint64 // the process's start, in clock ticks since boot: PID and this name one process
	Name      string // comm
	// CPU is the process's CPU over the last scan, percent of one core.
	CPU float64
	// Since is when it was first seen at or above the threshold, At
	// when it had been there for Options.For.
	Since, At time.Time
	// Thread is its hottest thread over the last scan, when its threads
	// could be read.
	Thread *Thread
}

// Thread is a process's hottest thread at a trigger.
type Thread struct {
	TID  int
	Name string
	CPU  float64
}

func (t Trigger) String() string {
	return fmt.Sprintf("%d (%s) at %.1f%% of a core for %.1f s", t.PID, t.Name, t.CPU, t.At.Sub(t.Since).Seconds())
}

// Skip says why a trigger was not diagnosed.
type Skip string

const (
	// SkipCooldown: its process was triggered less than Options.Cooldown
	// ago (or is queued or being diagnosed).
	SkipCooldown Skip = "cooldown"
	// SkipQueueFull: Options.Queue triggers were already waiting.
	SkipQueueFull Skip = "queue_full"
)

// Handler is told what the watch finds. Diagnose runs in the watch's one
// worker, one call at a time; the other methods are called from the
// scanning goroutine and must return at once.
type Handler interface {
	// Diagnose handles a trigger; ctx ends when the watch stops.
	Diagnose(ctx context.Context, t Trigger)
	// Skipped is told of a trigger not handed to Diagnose.
	Skipped(t Trigger, why Skip)
	// ScanFailed is told of a scan of /proc that failed, Scanned of
	// one that did not.
	ScanFailed(err error)
	Scanned(at time.Time)
}

// Watcher watches the processes of one /proc.
type Watcher struct {
	opts    Options
	scanner *proc.Scanner
	// hot is when each process was first seen over the threshold in
	// the current run of scans over it, by process.
	hot map[procKey]hotState
	// cooling is when each process may trigger again.
	cooling map[procKey]time.Time
	// threads is the last reading of the threads of each process over
	// the threshold, through tscan.
	threads map[procKey]*proc.Snapshot
	tscan   *proc.Scanner
	prev    *proc.Snapshot
	// listing and spare are Options.Procs's last listing and the
	// snapshot before prev, whose memory the next listing reuses.
	listing []taskiter.ProcTime
	spare   *proc.Snapshot
	// procs is Options.Procs until a listing fails, then nil.
	procs Lister
	queue chan Trigger
	// host is the host's CPU at hostAt, the last scan; stale says that
	// prev is older than the last interval (scans were skipped).
	host                  proc.HostCPU
	hostAt                time.Time
	stale                 bool
	fullScans, quietScans atomic.Int64
	listed                atomic.Int64
	scanCPU               atomic.Int64 // ns

	mu      sync.Mutex
	queued  int // triggers in the queue or being diagnosed
	running bool
}

// hotState is a process seen over the threshold at every scan since
// since; watched says whether Options.Match took it.
type hotState struct {
	since   time.Time
	watched bool
}

type procKey struct {
	pid   int
	start uint64
}

// New returns a Watcher; Run starts it.
func New(opts Options) *Watcher {
	opts = opts.withDefaults()
	return &Watcher{
		opts:    opts,
		scanner: proc.NewScanner(opts.FS),
		hot:     map[procKey]hotState{},
		cooling: map[procKey]time.Time{},
		threads: map[procKey]*proc.Snapshot{},
		tscan:   proc.NewScanner(opts.FS),
		queue:   make(chan Trigger, opts.Queue),
		procs:   opts.Procs,
	}
}

// Options returns the watcher's options, with the defaults filled in.
func (w *Watcher) Options() Options { return w.opts }

// Pending returns how many triggers are queued or being diagnosed.
func (w *Watcher) Pending() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.queued
}

// Run scans until ctx ends, then waits for the diagnosis under way (whose
// context ends too) and returns ctx's error, or the error of the first
// scan. Queued triggers not yet started are dropped.
func (w *Watcher) Run(ctx context.Context, h Handler) error {
	first, err := w.snapshot(h)
	if err != nil {
		return fmt.Errorf("scanning processes: %w", err)
	}
	w.prev = first
	w.fullScans.Add(1)
	w.quiet() // the first reading of the host's CPU
	h.Scanned(first.Taken)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		w.work(ctx, h)
	}()
	tick := time.NewTicker(w.opts.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		case <-tick.C:
			w.timedScan(h)
		}
	}
}

// timedScan is scan on a locked OS thread, whose CPU is added to
// ScanCPU: a diagnosis, which runs meanwhile in the same process, bills
// itself the process's CPU less this.
func (w *Watcher) timedScan(h Handler) {
	w.scanCPU.Add(int64(sys.OnThread(func() { w.scan(h) })))
}

// ScanCPU is the CPU the scans after the first have used, on their own
// threads (the garbage collection of what they allocate is not in it).
func (w *Watcher) ScanCPU() time.Duration { return time.Duration(w.scanCPU.Load()) }

func (w *Watcher) work(ctx context.Context, h Handler) {
	for {
		select {
		case <-ctx.Done():
			return
		case t := <-w.queue:
			if ctx.Err() != nil {
				return
			}
			h.Diagnose(ctx, t)
			w.mu.Lock()
			w.queued--
			w.mu.Unlock()
		}
	}
}

// quietShare is how far under the threshold the whole host's CPU must be
// for a scan to be skipped: process and host times are both counted in
// clock ticks, and a process's may be a tick ahead of the host's.
const quietShare = 0.9

// scan takes one snapshot and hands on the processes that have been hot
// for long enough. When the whole host used less CPU since the last scan
// than the threshold, no process can have reached it: the snapshot is
// not taken (one read of /proc/stat instead of a stat file per process),
// and the next one taken is a baseline only.
func (w *Watcher) scan(h Handler) {
	if w.quiet() {
		clear(w.hot)
		clear(w.threads)
		w.stale = true
		w.quietScans.Add(1)
		h.Scanned(time.Now())
		return
	}
	cur, err := w.snapshot(h)
	if err != nil {
		h.ScanFailed(err)
		return
	}
	w.fullScans.Add(1)
	if w.stale {
		// The previous snapshot is older than an interval: the CPU
		// since would be an average over the quiet time.
		w.spare, w.prev, w.stale = w.prev, cur, false
		h.Scanned(cur.Taken)
		return
	}
	prev := w.prev
	w.spare, w.prev = prev, cur
	now := cur.Taken
	h.Scanned(now)
	seen := make(map[procKey]bool, len(w.hot))
	for _, u := range proc.Compare(prev, cur) {
		if u.PID == w.opts.Self || u.CPU.Total < w.opts.CPU {
			continue
		}
		k := procKey{u.PID, u.StartTime}
		seen[k] = true
		st, ok := w.hot[k]
		if !ok {
			// Hot over the whole interval that ended now: since the
			// previous scan, or its start if it began after it.
			st.since = prev.Taken
			if p := prev.Find(u.PID); p == nil || p.StartTime != u.StartTime {
				st.since = now.Add(-min(now.Sub(prev.Taken), sinceStart(cur, u.Stat)))
			}
			// Asked once per run of hot scans: a process outside the
			// scope costs nothing more than its stat line.
			st.watched = w.opts.Match == nil || w.opts.Match(u.PID, u.Comm)
			w.hot[k] = st
		}
		if !st.watched {
			continue
		}
		hottest := w.readThreads(k)
		if now.Sub(st.since) < w.opts.For {
			continue
		}
		// The next trigger of this process needs another For over the
		// threshold, whatever becomes of this one.
		delete(w.hot, k)
		delete(w.threads, k)
		seen[k] = false
		t := Trigger{PID: u.PID, StartTime: u.StartTime, Name: u.Comm, CPU: u.CPU.Total, Since: st.since, At: now, Thread: hottest}
		w.offer(h, k, t, now)
	}
	// Forget what cooled down or is gone: the maps hold at most the
	// processes alive.
	for k := range w.hot {
		if !seen[k] {
			delete(w.hot, k)
		}
	}
	for k := range w.threads {
		if !seen[k] {
			delete(w.threads, k)
		}
	}
	for k, until := range w.cooling {
		if now.After(until) || cur.Find(k.pid) == nil || cur.Find(k.pid).StartTime != k.start {
			delete(w.cooling, k)
		}
	}
}

// snapshot takes one snapshot of every process, not its threads: from
// Options.Procs when set, else from /proc.
func (w *Watcher) snapshot(h Handler) (*proc.Snapshot, error) {
	if w.procs != nil {
		snap, err := w.list()
		if err == nil {
			w.listed.Add(1)
			return snap, nil
		}
		w.procs = nil
		h.ScanFailed(fmt.Errorf("%w; reading /proc from now on", err))
	}
	return w.scanner.Scan(scanAll)
}

// nsPerTick is the length of a clock tick of /proc's times (USER_HZ).
const nsPerTick = uint64(time.Second / proc.TicksPerSecond)

// list turns a listing of Options.Procs into a snapshot: a process's run
// time, which the listing does not split, is all in its user time, in
// /proc's clock ticks (Compare counts them).
func (w *Watcher) list() (*proc.Snapshot, error) {
	snap := &proc.Snapshot{Taken: time.Now(), SinceBoot: sys.SinceBoot()}
	var err error
	if w.listing, err = w.procs.List(w.listing[:0]); err != nil {
		return nil, fmt.Errorf("listing processes with BPF: %w", err)
	}
	if w.spare != nil {
		snap.Processes = w.spare.Processes[:0]
		w.spare = nil
	}
	snap.Processes = slices.Grow(snap.Processes, len(w.listing))
	for _, p := range w.listing {
		snap.Processes = append(snap.Processes, proc.Process{Stat: proc.Stat{
			PID: p.TGID, Comm: p.Comm, UTime: p.RunTime / nsPerTick, StartTime: p.StartTime, NumThreads: p.Threads,
		}})
	}
	return snap, nil
}

// quiet reads the host's CPU and reports whether it stayed under the
// threshold since the last reading; false when it cannot tell.
func (w *Watcher) quiet() bool {
	now := time.Now()
	host, err := w.opts.FS.HostCPU()
	if err != nil {
		w.hostAt = time.Time{}
		return false
	}
	prev, at := w.host, w.hostAt
	w.host, w.hostAt = host, now
	if at.IsZero() || host.Busy < prev.Busy || now.Sub(at) <= 0 {
		return false
	}
	busy := 100 * float64(host.Busy-prev.Busy) / proc.TicksPerSecond / now.Sub(at).Seconds()
	return busy < quietShare*w.opts.CPU
}

// Scans returns how many scans were taken and how many were skipped
// because the whole host was under the threshold.
func (w *Watcher) Scans() (full, quiet int64) { return w.fullScans.Load(), w.quietScans.Load() }

// Listed returns how many snapshots Options.Procs took (the others, of
// the full scans, read /proc).
func (w *Watcher) Listed() int64 { return w.listed.Load() }

// CheckLister says whether l lists the processes of fs under the PIDs fs
// names them by: the BPF programs see the kernel's PIDs, which are not
// those of a /proc mounted in another PID namespace. It lists once and
// looks for the calling process there, with the start time fs gives it.
func CheckLister(l Lister, fs proc.FS) error {
	self := os.Getpid()
	st, err := proc.NewScanner(fs).ReadProcess(self, false)
	if err != nil {
		return fmt.Errorf("reading this process in %s: %w", fs.PIDPath(self), err)
	}
	ps, err := l.List(nil)
	if err != nil {
		return fmt.Errorf("listing processes with BPF: %w", err)
	}
	i, ok := slices.BinarySearchFunc(ps, self, func(p taskiter.ProcTime, pid int) int { return p.TGID - pid })
	if !ok || ps[i].StartTime != st.StartTime {
		return fmt.Errorf("the BPF listing does not name this process %d as /proc does (another PID namespace)", self)
	}
	return nil
}

// sinceStart is how long the process has run at snapshot s.
func sinceStart(s *proc.Snapshot, st proc.Stat) time.Duration {
	started := time.Duration(st.StartTime) * (time.Second / proc.TicksPerSecond)
	return max(0, s.SinceBoot-started)
}

func (w *Watcher) offer(h Handler, k procKey, t Trigger, now time.Time) {
	if until, ok := w.cooling[k]; ok && now.Before(until) {
		h.Skipped(t, SkipCooldown)
		return
	}
	w.mu.Lock()
	if w.queued >= w.opts.Queue+1 { // the queue and the one being diagnosed
		w.mu.Unlock()
		h.Skipped(t, SkipQueueFull)
		return
	}
	w.queued++
	w.mu.Unlock()
	select {
	case w.queue <- t:
		w.cooling[k] = now.Add(w.opts.Cooldown)
	default:
		w.mu.Lock()
		w.queued--
		w.mu.Unlock()
		h.Skipped(t, SkipQueueFull)
	}
}

// readThreads reads the threads of a process over the threshold and
// returns its hottest thread since they were last read, at the previous
// scan; nil at the first reading, or when they could not be read. Only
// processes over the threshold have their threads read: on a host of ten
// thousand sleeping threads, a scan reads one line per process.
func (w *Watcher) readThreads(k procKey) *Thread {
	cur, err := w.tscan.Scan(proc.ScanOptions{PIDs: []int{k.pid}, Threads: true})
	if err != nil || len(cur.Processes) != 1 || cur.Processes[0].StartTime != k.start {
		delete(w.threads, k)
		return nil
	}
	prev := w.threads[k]
	w.threads[k] = cur
	if prev == nil {
		return nil
	}
	us := proc.Compare(prev, cur)
	if len(us) != 1 || len(us[0].Threads) == 0 {
		return nil
	}
	best := slices.MaxFunc(us[0].Threads, func(x, y proc.ThreadUsage) int {
		switch {
		case x.CPU.Total < y.CPU.Total:
			return -1
		case x.CPU.Total > y.CPU.Total:
			return 1
		}
		return y.PID - x.PID
	})
	return &Thread{TID: best.PID, Name: best.Comm, CPU: best.CPU.Total}
}

// scanAll is the watch's scan: every process, not its threads.
var scanAll = proc.ScanOptions{}
