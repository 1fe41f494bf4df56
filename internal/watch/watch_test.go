package watch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/taskiter"
	"github.com/cpuwhy/cpuwhy/test/privtest"
	"github.com/cpuwhy/cpuwhy/test/spinner"
)

func TestMain(m *testing.M) {
	spinner.Main()
	os.Exit(m.Run())
}

// recorder is a Handler that notes what it is told; Diagnose holds each
// diagnosis for hold, as a real one holds the worker for its window.
type recorder struct {
	hold time.Duration

	mu         sync.Mutex
	diagnosed  []Trigger
	skipped    map[Skip][]Trigger
	running    int
	maxRunning int
	scanErrs   []error
	diagnosing chan Trigger
}

func newRecorder(hold time.Duration) *recorder {
	return &recorder{hold: hold, skipped: map[Skip][]Trigger{}, diagnosing: make(chan Trigger, 100)}
}

func (r *recorder) Diagnose(ctx context.Context, t Trigger) {
	r.mu.Lock()
	r.running++
	r.maxRunning = max(r.maxRunning, r.running)
	r.mu.Unlock()
	r.diagnosing <- t
	select {
	case <-ctx.Done():
	case <-time.After(r.hold):
	}
	r.mu.Lock()
	r.running--
	r.diagnosed = append(r.diagnosed, t)
	r.mu.Unlock()
}

func (r *recorder) Skipped(t Trigger, why Skip) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.skipped[why] = append(r.skipped[why], t)
}

func (r *recorder) ScanFailed(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.scanErrs = append(r.scanErrs, err)
}

func (r *recorder) Scanned(time.Time) {}

func only(pids ...int) func(int, string) bool {
	return func(pid int, _ string) bool { return slices.Contains(pids, pid) }
}

func run(t *testing.T, opts Options, h Handler) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	w := New(opts)
	go func() { done <- w.Run(ctx, h) }()
	return func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	}
}

// sources runs f with each source of the scans: /proc, and the BPF
// listing (taskiter.Procs).
func sources(t *testing.T, f func(t *testing.T, procs Lister)) {
	t.Run("proc", func(t *testing.T) { f(t, nil) })
	t.Run("bpf", func(t *testing.T) { f(t, openProcs(t)) })
}

func openProcs(t *testing.T) *taskiter.Procs {
	t.Helper()
	p, err := taskiter.OpenProcs()
	if errors.Is(err, os.ErrPermission) || errors.Is(err, ebpf.ErrNotSupported) {
		privtest.Require(t, err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if err := CheckLister(p, proc.FS{}); err != nil {
		t.Fatal(err)
	}
	return p
}

// A process started after the watch began idles, then spins: it is
// triggered once it has spun for For, not while it idles, and its
// hottest thread is named.
func TestIdleThenSpin(t *testing.T) { sources(t, testIdleThenSpin) }

func testIdleThenSpin(t *testing.T, procs Lister) {
	r := newRecorder(0)
	const idle = 1500 * time.Millisecond
	// The threshold is low: on a shared two-core machine a spinner may get
	// much less than a core, and the test is of the trigger, not the CPU.
	opts := Options{CPU: 20, For: time.Second, Interval: 200 * time.Millisecond, Cooldown: time.Hour, Procs: procs}
	var pid atomic.Int64 // set once the spinner runs, read by the scans
	var started time.Time
	opts.Match = func(p int, _ string) bool { return int64(p) == pid.Load() }
	stop := run(t, opts, r)
	defer stop()
	time.Sleep(300 * time.Millisecond) // the watch has begun
	sp := spinner.Start(t, spinner.Name(), idle, 0)
	started = time.Now()
	pid.Store(int64(sp.PID))
	var trig Trigger
	select {
	case trig = <-r.diagnosing:
	case <-time.After(30 * time.Second):
		t.Fatalf("no trigger for %v", sp)
	}
	if trig.PID != sp.PID {
		t.Fatalf("triggered %d (%s), want the spinner %d", trig.PID, trig.Name, sp.PID)
	}
	// Not while it idled: it had spun for at least For when triggered.
	if spun := trig.At.Sub(started.Add(idle)); spun < opts.For-opts.Interval {
		t.Errorf("triggered %v after the spin began, want at least %v: %+v", spun, opts.For, trig)
	}
	if got := trig.At.Sub(trig.Since); got < opts.For {
		t.Errorf("hot for %v at the trigger, want at least %v", got, opts.For)
	}
	if trig.CPU < opts.CPU {
		t.Errorf("trigger at %.1f%%, under the threshold %.0f%%", trig.CPU, opts.CPU)
	}
	if trig.Thread == nil || trig.Thread.TID == 0 || trig.Thread.CPU < opts.CPU/2 {
		t.Errorf("hottest thread %+v, want one of the spinner's with its CPU", trig.Thread)
	}
	// It keeps spinning: the next trigger falls in the cooldown.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		n := len(r.skipped[SkipCooldown])
		r.mu.Unlock()
		if n > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.skipped[SkipCooldown]) == 0 || r.skipped[SkipCooldown][0].PID != sp.PID {
		t.Errorf("skipped %+v, want the spinner in its cooldown", r.skipped)
	}
	if len(r.diagnosing) != 0 {
		t.Errorf("diagnosed again during the cooldown")
	}
}

// Ten processes spike at once: one diagnosis at a time, at most Queue
// waiting, the rest skipped as queue_full and not put in a cooldown, so
// that they are diagnosed later while they still spin.
func TestBurst(t *testing.T) { sources(t, testBurst) }

func testBurst(t *testing.T, procs Lister) {
	const n = 10
	var pids []int
	var sps []*spinner.Spinner
	for range n {
		sp := spinner.Start(t, spinner.Name(), 0, 0)
		sps = append(sps, sp)
		pids = append(pids, sp.PID)
	}
	// Ten spinners share two cores, with whatever else runs: each gets
	// a fifth of a core at best, so the threshold is low.
	opts := Options{CPU: 2, For: time.Second, Interval: 200 * time.Millisecond, Cooldown: time.Hour, Queue: 2, Match: only(pids...), Procs: procs}
	r := newRecorder(time.Second)
	stop := run(t, opts, r)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		done := len(r.diagnosed)
		r.mu.Unlock()
		if done == n {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.maxRunning != 1 {
		t.Errorf("%d diagnoses at once, want 1", r.maxRunning)
	}
	got := map[int]int{}
	for _, d := range r.diagnosed {
		got[d.PID]++
	}
	for _, pid := range pids {
		if got[pid] != 1 {
			t.Errorf("PID %d diagnosed %d times, want once (diagnosed %v)", pid, got[pid], got)
		}
	}
	// With one running and two waiting, seven of the first ten triggers
	// found the queue full.
	if len(r.skipped[SkipQueueFull]) < n-1-opts.Queue {
		t.Errorf("%d triggers skipped with a full queue, want at least %d", len(r.skipped[SkipQueueFull]), n-1-opts.Queue)
	}
}

// A process that exits is forgotten: the watch's maps hold only the
// processes alive.
func TestForgetsExited(t *testing.T) {
	sp := spinner.Start(t, spinner.Name(), 0, 0)
	w := New(Options{CPU: 2, For: time.Hour, Interval: time.Hour, Match: only(sp.PID)})
	h := newRecorder(0)
	var err error
	if w.prev, err = w.scanner.Scan(scanAll); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	w.scan(h)
	mine := func() (hot, threads int) {
		for k := range w.hot {
			if k.pid == sp.PID {
				hot++
			}
		}
		for k := range w.threads {
			if k.pid == sp.PID {
				threads++
			}
		}
		return hot, threads
	}
	// Other processes over the threshold are in hot too (not watched:
	// their threads are not read).
	if hot, threads := mine(); hot != 1 || threads != 1 || len(w.threads) != 1 {
		t.Fatalf("after a scan of a hot spinner: %d hot, %d thread readings (%d in all), want 1, 1 and 1", hot, threads, len(w.threads))
	}
	sp.Stop()
	w.scan(h)
	if hot, threads := mine(); hot != 0 || threads != 0 {
		t.Errorf("after it exited: %d hot, %d thread readings, want none", hot, threads)
	}
}

// While the whole host uses less CPU than the threshold, no process can
// reach it: the scan reads /proc/stat alone, and the first scan after a
// quiet stretch is a baseline, not a measurement over the stretch.
func TestQuietHostSkipsScans(t *testing.T) {
	root := t.TempDir()
	busy := 1000
	setBusy := func(ticks int) {
		busy += ticks
		line := fmt.Sprintf("cpu  %d 0 0 100000 0 0 0 0 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n", busy)
		if err := os.WriteFile(filepath.Join(root, "stat"), []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	setBusy(0)
	w := New(Options{FS: proc.FS{Root: root}, CPU: 80})
	var err error
	if w.prev, err = w.scanner.Scan(scanAll); err != nil {
		t.Fatal(err)
	}
	w.quiet()
	h := newRecorder(0)
	for _, step := range []struct {
		ticks       int // host CPU ticks added in about 50 ms
		full, quiet int64
		stale       bool
	}{
		{1, 0, 1, true},    // 20% of a core: quiet
		{1, 0, 2, true},    // still quiet
		{100, 1, 2, false}, // 2000%: a scan, a baseline after the quiet ones
		{100, 2, 2, false}, // a scan measured against it
		{0, 2, 3, true},    // quiet again
	} {
		time.Sleep(50 * time.Millisecond)
		setBusy(step.ticks)
		w.scan(h)
		full, quiet := w.Scans()
		if full != step.full || quiet != step.quiet || w.stale != step.stale {
			t.Fatalf("after %d ticks: %d full and %d quiet scans, stale %v; want %d, %d, %v", step.ticks, full, quiet, w.stale, step.full, step.quiet, step.stale)
		}
	}
}

// failing is a Lister that fails after ok listings of the real one.
type failing struct {
	Lister
	ok int
}

func (f *failing) List(ps []taskiter.ProcTime) ([]taskiter.ProcTime, error) {
	if f.ok == 0 {
		return ps, errors.New("the listing broke")
	}
	f.ok--
	return f.Lister.List(ps)
}

// A listing that fails is told once, and the scans read /proc from then
// on: the spinner is still measured.
func TestListerFails(t *testing.T) {
	sp := spinner.Start(t, spinner.Name(), 0, 0)
	w := New(Options{CPU: 2, For: time.Hour, Interval: time.Hour, Match: only(sp.PID), Procs: &failing{Lister: openProcs(t), ok: 2}})
	h := newRecorder(0)
	var err error
	if w.prev, err = w.snapshot(h); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		time.Sleep(200 * time.Millisecond)
		w.scan(h)
	}
	full, _ := w.Scans()
	if full != 4 || w.Listed() != 2 || len(h.scanErrs) != 1 {
		t.Errorf("%d scans, %d listed, errors %v; want 4, 2 and one error", full, w.Listed(), h.scanErrs)
	}
	hot := false
	for k := range w.hot {
		hot = hot || k.pid == sp.PID
	}
	if !hot {
		t.Errorf("the spinner %d is not hot after the scans from /proc", sp.PID)
	}
}

// shifted is a Lister whose PIDs are not /proc's, as in another PID
// namespace.
type shifted struct{ Lister }

func (s shifted) List(ps []taskiter.ProcTime) ([]taskiter.ProcTime, error) {
	ps, err := s.Lister.List(ps)
	for i := range ps {
		ps[i].TGID += 100_000
	}
	return ps, err
}

func TestCheckLister(t *testing.T) {
	p := openProcs(t) // checked there
	if err := CheckLister(shifted{p}, proc.FS{}); err == nil {
		t.Error("a listing of other PIDs passed the check")
	}
}
