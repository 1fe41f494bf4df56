package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/container"
	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/sys"
	"github.com/cpuwhy/cpuwhy/internal/taskiter"
	"github.com/cpuwhy/cpuwhy/internal/top"
	"github.com/cpuwhy/cpuwhy/test/scenario"
)

// A mode is one kind of cpuwhy refresh.
type mode struct {
	name    string
	threads bool // the --threads view over all processes, else the process view
	// cold refreshes use a new Sampler each time, primed by a process-only
	// scan: every thread's stat is read (none can be carried over as idle),
	// and every process's metadata and every sleeping thread's syscall and
	// wchan too, as on the first frame after `cpuwhy top -H` starts or on
	// the live view's toggle to threads.
	cold bool
	// iter lists the threads with the BPF task iterator (internal/
	// taskiter) instead of /proc, loaded once for the mode's refreshes,
	// as `cpuwhy top` keeps it; with load, a cold refresh loads and
	// attaches it too, as the first frame of a `cpuwhy top -H` does.
	iter, load bool
}

var modes = []mode{
	{name: "steady/threads", threads: true},
	{name: "steady/processes"},
	{name: "cold/threads", threads: true, cold: true},
	{name: "cold/processes", cold: true},
	{name: "steady-iter/threads", threads: true, iter: true},
	{name: "cold-iter/threads", threads: true, cold: true, iter: true},
	{name: "cold-iter-load/threads", threads: true, cold: true, iter: true, load: true},
}

func modeNames() []string {
	names := make([]string, len(modes))
	for i, m := range modes {
		names[i] = m.name
	}
	return names
}

// modeResult is what one mode measured at one level.
type modeResult struct {
	mode
	cpu          []time.Duration // whole process, from before Next to the end of the interval after it
	onThread     []time.Duration // the calling thread, around Next only
	allocBytes   []uint64
	allocObjects []uint64
	rssBytes     int64 // VmRSS after the mode's refreshes, highest seen
	rows         int   // processes, or threads in the thread view, in the last frame
}

// levelResult is everything measured at one level of load.
type levelResult struct {
	extraThreads int
	hostThreads  int // every task on the host, kernel threads included, as top -H and ps -eL count them
	modes        []*modeResult
	// Per refresh of top (marginal iteration) and per run of ps, with and
	// without threads.
	topThreads, topProcs []time.Duration
	psThreads, psProcs   []time.Duration
	hwmBytes             int64 // VmHWM of this process at the end of the level
}

// runner holds the state of one mode across rounds.
type runner struct {
	res     *modeResult
	spec    top.Spec
	sampler *top.Sampler   // the steady modes' one Sampler
	iter    *taskiter.Iter // its task iterator, in the iter modes
}

func newSampler(iter *taskiter.Iter) (*top.Sampler, error) {
	// As `cpuwhy top` builds it (internal/cli): the host's /proc and a
	// container resolver with default settings, and the task iterator
	// where it loads.
	o := top.Options{Proc: proc.FS{}, Containers: container.NewResolver(container.Options{})}
	if iter != nil {
		o.Tasks = iter
	}
	return top.NewSampler(o)
}

func measureLevel(ctx context.Context, o options, prog scenario.Program, extra int, profile bool) (levelResult, error) {
	fmt.Fprintf(o.progress, "starting %d threads in %d processes (%d busy)\n", extra, o.procs, o.busy)
	l, err := startLoad(ctx, prog, extra, o.procs, o.busy)
	if err != nil {
		return levelResult{}, err
	}
	defer l.stop()

	res := levelResult{extraThreads: extra}
	if res.hostThreads, err = countHostThreads(); err != nil {
		return res, err
	}
	var runners []*runner
	for _, m := range modes {
		if !o.modes[m.name] {
			continue
		}
		r := &runner{res: &modeResult{mode: m}, spec: top.Spec{Threads: m.threads}}
		if m.iter && !m.load {
			if r.iter, err = taskiter.Open(); err != nil {
				return res, err
			}
			defer r.iter.Close()
		}
		if !m.cold {
			// Prime and one unmeasured refresh: the first Next reads every
			// process's metadata and is the cold case, not the steady one.
			if r.sampler, err = newSampler(r.iter); err != nil {
				return res, err
			}
			if err := r.sampler.Prime(r.spec); err != nil {
				return res, err
			}
			if err := sleep(ctx, o.interval); err != nil {
				return res, err
			}
			f, err := r.sampler.Next(r.spec)
			if err != nil {
				return res, err
			}
			r.sampler.ResolveBlocked(f.Processes)
		}
		runners = append(runners, r)
		res.modes = append(res.modes, r.res)
	}

	// Rounds interleave cpuwhy, top and ps, so that whatever else the
	// machine does during the run weighs on all of them alike.
	for round := range o.rounds {
		fmt.Fprintf(o.progress, "  %d threads: round %d/%d\n", extra, round+1, o.rounds)
		n := o.refreshes / o.rounds
		if round < o.refreshes%o.rounds {
			n++
		}
		for _, r := range runners {
			for range n {
				if err := r.refresh(ctx, o.interval); err != nil {
					return res, err
				}
			}
			r.res.rssBytes = max(r.res.rssBytes, selfStatus("VmRSS"))
		}
		if !o.compare {
			continue
		}
		if err := res.compareRound(ctx, o); err != nil {
			return res, err
		}
	}
	if profile {
		if err := profileCold(ctx, o); err != nil {
			return res, err
		}
	}
	res.hwmBytes = selfStatus("VmHWM")
	return res, nil
}

// refresh measures one refresh. The process's CPU is read from just before
// Next to the end of the interval that follows it, so that garbage
// collection work that Next sets off and the runtime finishes in the
// background is counted with it; the main goroutine is otherwise idle
// during the interval, and any other CPU the process spends then (the
// scheduler's monitor thread) is cpuwhy's cost too.
func (r *runner) refresh(ctx context.Context, interval time.Duration) error {
	s := r.sampler
	var opening time.Duration
	if r.res.cold {
		var err error
		iter := r.iter
		if r.res.load {
			// Loading and attaching the iterator is part of a cold
			// view: `cpuwhy top -H` does it before its first frame.
			c0 := sys.ProcessCPU()
			if iter, err = taskiter.Open(); err != nil {
				return err
			}
			opening = sys.ProcessCPU().Sub(c0).Total()
			defer iter.Close()
		}
		if s, err = newSampler(iter); err != nil {
			return err
		}
		if err := s.Prime(top.Spec{PIDs: r.spec.PIDs}); err != nil {
			return err
		}
	}
	a0 := readAllocs()
	p0, t0 := sys.ProcessCPU(), sys.ThreadCPU()
	frame, err := s.Next(r.spec)
	if err == nil {
		// As `cpuwhy top --json` does, the costliest form: every sleeping
		// thread's syscall is resolved, not just the rows on a screen.
		s.ResolveBlocked(frame.Processes)
	}
	t1 := sys.ThreadCPU()
	a1 := readAllocs()
	if err != nil {
		return err
	}
	if err := sleep(ctx, interval); err != nil {
		return err
	}
	p1 := sys.ProcessCPU()
	r.res.cpu = append(r.res.cpu, opening+p1.Sub(p0).Total())
	r.res.onThread = append(r.res.onThread, opening+t1.Sub(t0).Total())
	r.res.allocBytes = append(r.res.allocBytes, a1.bytes-a0.bytes)
	r.res.allocObjects = append(r.res.allocObjects, a1.objects-a0.objects)
	r.res.rows = len(frame.Processes)
	if r.spec.Threads {
		r.res.rows = 0
		for _, p := range frame.Processes {
			r.res.rows += len(p.Threads)
		}
	}
	return nil
}

// compareRound runs top and ps once each, with threads and without.
func (res *levelResult) compareRound(ctx context.Context, o options) error {
	var err error
	measure := func(dst *[]time.Duration, f func() (time.Duration, error)) {
		if err != nil {
			return
		}
		var d time.Duration
		if d, err = f(); err == nil {
			*dst = append(*dst, d)
		}
	}
	measure(&res.topThreads, func() (time.Duration, error) { return topIteration(ctx, o, "-H") })
	measure(&res.topProcs, func() (time.Duration, error) { return topIteration(ctx, o) })
	measure(&res.psThreads, func() (time.Duration, error) { return childCPU(ctx, "ps", "-eLf") })
	measure(&res.psProcs, func() (time.Duration, error) { return childCPU(ctx, "ps", "-ef") })
	return err
}

// topIteration is the CPU of one refresh of top in batch mode: the CPU of a
// run of 1+k iterations minus that of a run of one, divided by k. The
// difference removes what a run of top costs once (exec, dynamic linking,
// reading its configuration, the terminal setup, and the first scan that
// only sets the baseline of %CPU), leaving the cost of the refreshes a
// user watching top pays for every -d seconds. It includes formatting every
// task's line to /dev/null, which Sampler.Next does not do.
func topIteration(ctx context.Context, o options, extra ...string) (time.Duration, error) {
	run := func(n int) (time.Duration, error) {
		args := append([]string{"-b", "-n", strconv.Itoa(n), "-d", "0.1"}, extra...)
		return childCPU(ctx, "top", args...)
	}
	one, err := run(1)
	if err != nil {
		return 0, err
	}
	more, err := run(1 + o.topIterations)
	if err != nil {
		return 0, err
	}
	return (more - one) / time.Duration(o.topIterations), nil
}

// childCPU runs a command with its output discarded and returns the user
// and system CPU it used, as wait4(2) reports it.
func childCPU(ctx context.Context, name string, args ...string) (time.Duration, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err() // killed by an interrupt, not failed
		}
		return 0, fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, truncate(out))
	}
	return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
}

func truncate(b []byte) []byte {
	if len(b) > 512 {
		return b[:512]
	}
	return b
}

// profileCold writes a CPU profile of cold thread-view refreshes, apart
// from the measured ones because the profiler's own signals cost CPU.
func profileCold(ctx context.Context, o options) error {
	fmt.Fprintf(o.progress, "  profiling %d cold --threads refreshes (from the task iterator with -modes cold-iter/threads) into %s\n", o.refreshes, o.profile)
	f, err := os.Create(o.profile)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	defer pprof.StopCPUProfile()
	// The cold thread view from the task iterator when it is measured,
	// else from /proc.
	r := &runner{res: &modeResult{mode: modes[2]}, spec: top.Spec{Threads: true}}
	if o.modes["cold-iter/threads"] {
		r.res.mode = modes[5]
		it, err := taskiter.Open()
		if err != nil {
			return err
		}
		defer it.Close()
		r.iter = it
	}
	for range o.refreshes {
		if err := r.refresh(ctx, o.interval); err != nil {
			return err
		}
	}
	return nil
}

type allocs struct{ bytes, objects uint64 }

// readAllocs reads the heap allocation counters, which unlike
// runtime.ReadMemStats do not stop the world.
func readAllocs() allocs {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}, {Name: "/gc/heap/allocs:objects"}}
	metrics.Read(s)
	return allocs{s[0].Value.Uint64(), s[1].Value.Uint64()}
}

// selfStatus returns a size field (VmRSS, VmHWM) of /proc/self/status in
// bytes, or 0.
func selfStatus(field string) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func countHostThreads() (int, error) {
	snap, err := proc.NewScanner(proc.FS{}).Scan(proc.ScanOptions{KernelThreads: true})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, p := range snap.Processes {
		n += p.NumThreads
	}
	return n, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
