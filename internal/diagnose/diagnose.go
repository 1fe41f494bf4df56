package diagnose

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/cpuprofile"
	"github.com/cpuwhy/cpuwhy/internal/flame"
	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/stack"
	"github.com/cpuwhy/cpuwhy/internal/sys"
	"github.com/cpuwhy/cpuwhy/internal/syscalls"
	"github.com/cpuwhy/cpuwhy/internal/target"
	"github.com/cpuwhy/cpuwhy/internal/verdict"
)

// DefaultDuration is the window of a diagnosis.
const DefaultDuration = 3 * time.Second

// Options shape a diagnosis.
type Options struct {
	FS        proc.FS
	Duration  time.Duration // the window; 0: DefaultDuration
	Frequency int           // stack samples per second of CPU per thread; 0: 99
	DebugDirs []string
	NoAttach  bool // forbid asking a runtime for its names (--no-attach)
	// Tracers are tried in order until one is supported (eBPF, then
	// ptrace); none: no syscall profile.
	Tracers []syscalls.Candidate
	// Progress, when set, is called about once a second with the time
	// so far.
	Progress func(elapsed time.Duration)

	// The other collaborators that read the target (see seams.go); nil
	// is the real one, reading through FS.
	Accounting Accounting           // the CPU accounting at each end of the window
	Profiler   Profiler             // the stack samples
	FDs        syscalls.FDDescriber // what the fds in the syscall profile are
	Maps       Mappings             // the mappings, for a runtime's name
	Memory     Memory               // the hot code, for its listing
	// Arch is the target's architecture (a GOARCH), which numbers its
	// syscalls and encodes its code; "": this machine's.
	Arch string
	// OtherCPU, when set, is the CPU the process has used since it began
	// on work other than its diagnoses, measured apart (the scans of
	// cpuwhy watch, the agent's HTTP server: each on a locked OS thread,
	// RUSAGE_THREAD): what it used during the diagnosis is taken out of
	// the process's CPU over the diagnosis for Report.Cpuwhy.CPU. nil: a
	// one-shot command, which does nothing else.
	OtherCPU func() time.Duration
	// Shared is what the diagnoses of a long-lived process (cpuwhy
	// agent and watch) share, so that each does not read it again (the
	// kernel's symbols, the objects' names and unwinding tables); nil
	// for a one-shot diagnosis.
	Shared *stack.Shared
	// ExactCounts counts every syscall of the target however fast it
	// makes them (--exact); by default a target making hundreds of
	// thousands a second is counted in slices of the window
	// (syscalls.Options.Exact).
	ExactCounts bool
	// KeepExited diagnoses a target that exits during the window on what
	// was seen until then, instead of failing with ErrGone: the
	// accounting is also read every keepEvery during the window (what
	// cpuwhy watch and agent need, where a spike may end with its
	// process; Accounting.Between, the target alone), and the window
	// ends at the last of those readings (the host's other processes
	// are compared over the whole window all the same).
	KeepExited bool
}

// keepEvery is how often the accounting is read during the window with
// Options.KeepExited (less often for a process so big that reading it
// would take more than a twentieth of the time): the CPU of at most the
// last quarter second before an exit is lost, and an exit in the window's
// first quarter second still fails.
const keepEvery = 250 * time.Millisecond

// Result is a diagnosis: the report and the recorded profile.
type Result struct {
	Report  *Report
	Profile *flame.Profile
}

// ErrGone matches the error of a target that exited during the window.
var ErrGone = proc.ErrGone

func otherCPU(opts Options) time.Duration {
	if opts.OtherCPU == nil {
		return 0
	}
	return opts.OtherCPU()
}

// Run diagnoses process t.
func Run(ctx context.Context, t target.Target, opts Options) (*Result, error) {
	opts = opts.withDefaults()
	began, cpu0, other0 := time.Now(), sys.ProcessCPU(), otherCPU(opts)
	// The target is read once before the set-up, so that a bad target
	// fails at once, and again, with its threads, at each end of the
	// window.
	if err := opts.Accounting.Check(t.PID); err != nil {
		return nil, fmt.Errorf("reading %s: %w", t, err)
	}
	win := newReadings(func() (Reading, error) { return opts.Accounting.Read(t.PID) },
		func() (Reading, error) { return opts.Accounting.Between(t.PID) }, opts.Duration)
	if opts.KeepExited {
		win.every = keepEvery
	}
	line := newLineup(2, func() { win.open(ctx) })
	traceReady, traceDone := line.member(ctx)
	sampleReady, sampleDone := line.member(ctx)

	var wg sync.WaitGroup
	var prof *syscalls.Profile
	var mech syscalls.Mechanism
	var traceErr error
	var notes []string
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer traceDone()
		if t.Kernel {
			// A kernel thread makes no system calls: nothing to trace.
			return
		}
		prof, mech, traceErr, notes = trace(ctx, t.PID, opts, traceReady)
	}()
	rec, recErr := opts.Profiler.Record(ctx, t.PID, cpuprofile.Options{
		FS: opts.FS, Frequency: opts.Frequency, Duration: opts.Duration, Kernel: true,
		NoAttach: opts.NoAttach, DebugDirs: opts.DebugDirs, Progress: opts.Progress, Ready: sampleReady, NsPID: t.NsPID,
		Shared: opts.Shared, Locks: true,
	})
	sampleDone()
	wg.Wait()
	win.close()
	snap0, snap1, endErr := win.first, win.last, errors.Join(win.err0, win.err1)
	// Interrupted (Ctrl-C), the instruments return what they saw so far,
	// and the verdict is on that, as strace -c reports on Ctrl-C.
	if ctx.Err() != nil {
		if errors.Is(recErr, context.Canceled) {
			recErr = nil
		}
		if errors.Is(traceErr, context.Canceled) {
			traceErr = nil
		}
		if prof == nil && rec == nil {
			return nil, ctx.Err()
		}
		notes = append(notes, fmt.Sprintf("interrupted after %.1f s: the verdict is on what was seen so far", time.Since(began).Seconds()))
	}
	ended := prof != nil && prof.Ended != ""
	switch {
	case (ended || win.exited) && endErr == nil && opts.KeepExited:
		notes = append(notes, fmt.Sprintf("the process exited during the window: the verdict is on what was seen until then (its CPU over the %.1f s to its last reading)",
			snap1.Taken.Sub(snap0.Taken).Seconds()))
	case endErr != nil || ended:
		return nil, fmt.Errorf("%s exited during the window (%w): nothing to diagnose; run cpuwhy again while it runs", t, ErrGone)
	}
	if recErr != nil && traceErr != nil {
		return nil, blind(t, traceErr, recErr)
	}
	if t.Kernel {
		notes = append(notes, "a kernel thread makes no system calls: none traced; its CPU and its kernel stacks are the evidence")
	}
	if recErr != nil {
		notes = append(notes, fmt.Sprintf("no stack samples, so no code path: %v", recErr))
	}
	if traceErr != nil {
		mech = "" // the report's last line would name a profile there is not
		notes = append(notes, fmt.Sprintf("no syscall profile, so no verdict that needs one: %v", traceErr))
	}

	if rec != nil && len(rec.Execs) > 0 {
		// The process runs another program now: the report is named
		// after it, and says it ran exec (a note from the recording).
		t.Name = rec.Execs[len(rec.Execs)-1].To
		t.Cmdline = opts.FS.Identity(t.PID).Cmdline
	}
	o, report := observe(t, opts, snap0, snap1, prof, rec)
	report.Notes = append(report.Notes, notes...)
	report.Verdicts = verdict.Judge(o)
	markGroups(report)
	used := max(0, sys.ProcessCPU().Sub(cpu0).Total()-(otherCPU(opts)-other0))
	elapsed := time.Since(began)
	report.Cpuwhy = Cost{
		Elapsed:   elapsed.Seconds(),
		CPU:       used.Seconds(),
		CPUShare:  100 * used.Seconds() / elapsed.Seconds(),
		Mechanism: mech,
	}
	if rec != nil {
		report.Cpuwhy.Samples = rec.Samples
	}
	if prof != nil && traceErr == nil {
		report.Cpuwhy.Counting = prof.Counting
	}
	res := &Result{Report: report}
	if rec != nil {
		res.Profile = rec.Profile
		res.Profile.Process, res.Profile.Container = t.Name, t.ContainerLabel()
	}
	return res, nil
}

// BlindError is the error of a diagnosis where no instrument could
// attach: neither the syscall tracer nor the sampler. It says so in one
// line, and keeps both causes: errors.Is and errors.As find either, and a
// *target.PrivilegeError when capabilities are missing.
type BlindError struct {
	Target   target.Target
	Syscalls error // why there is no syscall profile
	Stacks   error // why there are no stack samples
	// Privilege, when set, says which capabilities cpuwhy lacks, the
	// likely reason for both, and is the message.
	Privilege *target.PrivilegeError
}

func (e *BlindError) Error() string {
	if e.Privilege != nil {
		return e.Privilege.Error()
	}
	return fmt.Sprintf("cannot observe %s: no syscall profile (%v) and no stack samples (%v)", e.Target, e.Syscalls, e.Stacks)
}

// Unwrap returns the causes: the privilege error first when there is one.
func (e *BlindError) Unwrap() []error {
	var errs []error
	if e.Privilege != nil {
		errs = append(errs, e.Privilege)
	}
	for _, err := range []error{e.Syscalls, e.Stacks} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// blind is the error of a diagnosis where no instrument could attach:
// when capabilities are missing, which, and what works without them.
func blind(t target.Target, traceErr, recErr error) error {
	e := &BlindError{Target: t, Syscalls: traceErr, Stacks: recErr}
	if caps, err := sys.EffectiveCaps(); err == nil {
		if missing := caps.Missing(sys.CapBPF, sys.CapPerfmon, sys.CapSysPtrace); len(missing) > 0 {
			e.Privilege = &target.PrivilegeError{PID: t.PID, Name: t.Name, Missing: missing}
		}
	}
	return e
}

// trace runs the first supported tracer, noting a fallback.
func trace(ctx context.Context, pid int, opts Options, ready func()) (*syscalls.Profile, syscalls.Mechanism, error, []string) {
	var notes []string
	p, mech, err := syscalls.TraceFirst(ctx, pid, syscalls.Options{
		Duration: opts.Duration, TimeEvery: syscalls.DefaultTimeEvery, MaxKeys: syscalls.DefaultMaxKeys, Ready: ready,
		Exact: opts.ExactCounts,
	}, opts.Tracers, func(err error, next syscalls.Mechanism) {
		notes = append(notes, fmt.Sprintf("%v; syscalls traced with %s instead, which slows the target down", err, next))
	})
	return p, mech, err, notes
}

// observe builds the observation of the window and the report's skeleton;
// opts has its defaults.
func observe(t target.Target, opts Options, snap0, snap1 Reading, prof *syscalls.Profile, rec *cpuprofile.Result) (*verdict.Observation, *Report) {
	seconds := snap1.Taken.Sub(snap0.Taken).Seconds()
	o := &verdict.Observation{Seconds: seconds, PID: t.PID, Name: t.Name, NoSyscalls: prof == nil, Kernel: t.Kernel}
	r := &Report{Window: seconds}
	threads := map[int]*verdict.Thread{}
	// Threads that ended during the window are one row (TID 0): a
	// thread per request leaves hundreds, each of a request's calls and
	// samples, and their CPU is known only together.
	alive := map[int]bool{}
	exitedTIDs := map[int]bool{}
	gone := func(tid int) bool { return len(alive) > 0 && !alive[tid] }
	get := func(tid int, name string) *verdict.Thread {
		if tid != 0 && gone(tid) {
			exitedTIDs[tid] = true
			tid, name = 0, exitedRow
		}
		th := threads[tid]
		if th == nil {
			th = &verdict.Thread{TID: tid, Name: name}
			threads[tid] = th
		}
		if th.Name == "" {
			th.Name = name
		}
		return th
	}
	var group, live proc.CPU // the process's own account, and its live threads'
	for _, u := range proc.Compare(snap0.snapshot(), snap1.snapshot()) {
		if u.PID != t.PID {
			continue
		}
		group = u.CPU
		p0, p1 := snap0.Process.Stat, snap1.Process.Stat
		if p1.StartTime == p0.StartTime {
			ticks := (p1.CUTime + p1.CSTime) - min(p0.CUTime+p0.CSTime, p1.CUTime+p1.CSTime)
			o.Children = 100 * float64(ticks) / proc.TicksPerSecond / seconds
		}
		for _, tu := range u.Threads {
			alive[tu.PID] = true
		}
		for _, tu := range u.Threads {
			th := get(tu.PID, tu.Comm)
			th.CPU = tu.CPU
			live = addCPU(live, tu.CPU)
			s0, ok0 := snap0.Sched[tu.PID]
			s1, ok1 := snap1.Sched[tu.PID]
			if ok0 && ok1 && seconds > 0 {
				wanted := (s1.OnCPU - s0.OnCPU) + (s1.Waiting - s0.Waiting)
				th.Demand = min(100, round1(100*wanted.Seconds()/seconds))
			}
		}
	}
	if prof != nil {
		sr := syscalls.Summarize(mergeExited(prof, gone, exitedTIDs), opts.Arch, opts.FDs)
		o.Dropped = sr.Dropped
		o.Counting = sr.Counting
		o.Seconds = max(sr.Duration, 1e-3) // rates over the tracer's own window
		if line := sr.Counting.String(); line != "" {
			r.Notes = append(r.Notes, line)
		}
		for _, st := range sr.Threads {
			get(st.TID, st.Name).Syscalls = st.Syscalls
		}
		r.Syscalls = sr.Syscalls
		for _, n := range sr.Notes {
			// How durations were sampled matters to a reader of
			// latencies, which this report does not show; calls not
			// counted are said below with what they affect.
			if !strings.HasPrefix(n, "durations are sampled") && !strings.Contains(n, "calls were not counted") {
				r.Notes = append(r.Notes, n)
			}
		}
		if sr.Dropped > 0 {
			r.Notes = append(r.Notes, fmt.Sprintf("%d calls were not counted (%.1f%% of those counted): the tracer's tables of (thread, syscall, result, fd) keys were full (more keys than --max-keys); "+
				"affected: every syscall count and rate in the thread table and the verdicts (lower bounds: a rate shown under a threshold may be over it), and which thread made the missing calls", sr.Dropped, 100*float64(sr.Dropped)/float64(max(sr.Calls, 1))))
		}
	}
	if rec != nil {
		o.Samples = rec.Samples
		if l := rec.Lock; l != nil {
			o.GIL = &verdict.GIL{EveryMS: float64(l.Every) / float64(time.Millisecond), Readings: l.Readings, Held: l.Held, Free: l.Free, Err: l.Err}
		}
		addStacks(rec.Profile, get, t.Kernel)
		// The hot code of every thread whose CPU, or demand when it got
		// less than it wanted (a pool sharing a loaded core, judged as a
		// group), makes it hot: the busiest maxCodeThreads.
		var hot []*verdict.Thread
		for tid, th := range threads {
			if tid != 0 && max(th.CPU.Total, th.Demand) >= verdict.HotThreadCPU && th.Samples > 0 {
				hot = append(hot, th)
			}
		}
		slices.SortFunc(hot, func(a, b *verdict.Thread) int {
			return cmp.Or(cmp.Compare(b.CPU.Total, a.CPU.Total), cmp.Compare(b.Demand, a.Demand), cmp.Compare(a.TID, b.TID))
		})
		for _, th := range hot[:min(len(hot), maxCodeThreads)] {
			th.Code = hotCode(opts.Memory, opts.Arch, t.PID, th.TID, rec.Leaves)
		}
		r.Notes = append(r.Notes, rec.Notes...)
		r.Missing = rec.Profile.Missing
		r.Execs = rec.Execs
	}
	for _, th := range snap0.Process.Threads {
		if gone(th.PID) {
			exitedTIDs[th.PID] = true
		}
	}
	// Threads the tracer folded together are counted, not listed; one
	// alive at the start is counted twice, in both.
	nExited := len(exitedTIDs)
	if prof != nil {
		nExited += prof.Folded
	}
	exited := exitedCPU(group, live, nExited > 0)
	if nExited > 0 {
		row := get(0, exitedRow)
		row.CPU = exited
		row.Exited = nExited
	}
	o.CPU = addCPU(live, exited)
	host, err := hostWindow(snap0.Host, snap1.Host, seconds, snap1.Allowed)
	if err != nil {
		r.Notes = append(r.Notes, fmt.Sprintf("no host line: %v", err))
	}
	o.Host, r.Host = host, host
	o.Cgroups = cgroupWindow(snap0.Cgroup, snap1.Cgroup, seconds)
	r.Cgroups = o.Cgroups
	o.Neighbours, o.KernelThreads = neighbourWindow(snap0.Others, snap1.Others, snap1.othersTaken().Sub(snap0.othersTaken()).Seconds(), t.PID, snap1.Allowed)
	o.Nice = snap1.Process.Stat.Nice
	r.Neighbours, r.KernelThreads = o.Neighbours, o.KernelThreads
	o.ThreadsAlive = len(alive)
	o.Runtime = runtimeOf(opts.Maps, t.PID, threads)
	for _, th := range threads {
		o.Threads = append(o.Threads, *th)
	}
	slices.SortFunc(o.Threads, func(a, b verdict.Thread) int {
		if a.CPU.Total != b.CPU.Total {
			if a.CPU.Total > b.CPU.Total {
				return -1
			}
			return 1
		}
		return a.TID - b.TID
	})
	r.Target = Target{PID: t.PID, NsPID: t.NsPID, Name: t.Name, Cmdline: t.Cmdline, Container: t.Container,
		CPU: round1(o.CPU.Total), User: round1(o.CPU.User), System: round1(o.CPU.System), Children: round1(o.Children),
		Exited: round1(exited.Total), Picked: t.Picked}
	r.ThreadCount = len(o.Threads)
	for _, th := range o.Threads {
		if len(r.Threads) == maxThreads {
			r.Notes = append(r.Notes, fmt.Sprintf("%d more threads not listed", len(o.Threads)-maxThreads))
			break
		}
		r.Threads = append(r.Threads, threadReport(&th, o.Seconds))
	}
	return o, r
}

// The process's CPU is the sum of its threads' rows, so that the header
// and the thread table are one measurement: the process's own figure in
// /proc/PID/stat and each thread's in /proc/PID/task/TID/stat are the same
// nanoseconds truncated to clock ticks separately, and over a window they
// differ by a tick either way (an idle PID 1 read 0.4% in the header and
// 0.9% in one thread's row). The process's figure is needed for one thing
// only: the CPU of threads that exited during the window, which no row
// has. exitedCPU is that remainder, and only when a thread did exit;
// otherwise the difference is the truncation and nothing else.
func exitedCPU(group, live proc.CPU, anyExited bool) proc.CPU {
	if !anyExited {
		return proc.CPU{}
	}
	c := proc.CPU{User: max(0, group.User-live.User), System: max(0, group.System-live.System)}
	c.Total = c.User + c.System
	return c
}

// maxCodeThreads bounds the threads whose hot code is read and decoded.
const maxCodeThreads = 64

// exitedRow names the row of the threads that ended during the window.
const exitedRow = "(exited threads)"

// mergeExited returns p with the calls of the threads gone by the end of
// the window under TID 0, named exitedRow, adding their TIDs to exited.
func mergeExited(p *syscalls.Profile, gone func(int) bool, exited map[int]bool) *syscalls.Profile {
	merged := *p
	merged.Stats = make(map[syscalls.Key]*syscalls.Stat, len(p.Stats))
	merged.Threads = make(map[int]string, len(p.Threads))
	for tid, name := range p.Threads {
		if tid == syscalls.ExitedTID {
			merged.Threads[0] = exitedRow
			continue
		}
		if gone(tid) {
			exited[tid] = true
			tid, name = 0, exitedRow
		}
		merged.Threads[tid] = name
	}
	for k, s := range p.Stats {
		if k.TID == syscalls.ExitedTID {
			merged.Threads[0] = exitedRow // the tracer's folded threads, counted by Folded
		} else if gone(k.TID) {
			exited[k.TID] = true
			k.TID = 0
			merged.Threads[0] = exitedRow
		}
		if merged.Stats[k] == nil {
			merged.Stats[k] = &syscalls.Stat{}
		}
		merged.Stats[k].Add(s)
	}
	return &merged
}

func addCPU(a, b proc.CPU) proc.CPU {
	return proc.CPU{Total: a.Total + b.Total, User: a.User + b.User, System: a.System + b.System}
}

// addStacks gives each thread its user stacks, summed over the kernel
// stacks above them, most sampled first; for a kernel thread, which has
// no user stack, its kernel stacks (kernelOnly).
func addStacks(p *flame.Profile, get func(int, string) *verdict.Thread, kernelOnly bool) {
	type key struct {
		tid  int
		user string
	}
	sums := map[key]*verdict.Stack{}
	for _, s := range p.Stacks {
		var user, kernel []string
		var interp *verdict.Interpreted
		for _, f := range s.Frames {
			if f.IsKernel() {
				kernel = append(kernel, f.Name())
			} else {
				user = append(user, f.Name())
				if interp == nil {
					interp = interpreted(f)
				}
			}
		}
		th := get(s.TID, s.Thread)
		th.Samples += int(s.Count)
		k := key{s.TID, strings.Join(user, "\x00")}
		if kernelOnly {
			k.user = strings.Join(kernel, "\x00")
		}
		if sums[k] == nil {
			sums[k] = &verdict.Stack{Frames: user, Kernel: kernel, Interpreted: interp}
		}
		sums[k].Count += int(s.Count)
	}
	touched := map[*verdict.Thread]bool{}
	for k, s := range sums {
		th := get(k.tid, "")
		th.Stacks = append(th.Stacks, *s)
		touched[th] = true
	}
	for th := range touched {
		slices.SortFunc(th.Stacks, func(a, b verdict.Stack) int {
			return cmp.Or(b.Count-a.Count, slices.Compare(a.Frames, b.Frames))
		})
	}
}

// interpreted is f as the verdicts see code an interpreter ran, or nil:
// a frame a language runtime named with a source position (a Python
// function, not a JIT's perf map symbol, which has none).
func interpreted(f stack.Frame) *verdict.Interpreted {
	if f.Kind == stack.Native || f.Kind == stack.Kernel || f.Kind == "" || f.File == "" {
		return nil
	}
	lang, ok := languages[f.Kind]
	if !ok {
		lang = string(f.Kind)
	}
	return &verdict.Interpreted{Language: lang, Function: f.Function, File: f.File, Line: f.Line}
}

// languages names the language of the code each runtime's frames ran, as
// its users call it.
var languages = map[stack.Kind]string{"python": "Python", "v8": "JavaScript", "hotspot": "Java"}

// runtimeOf tells a Go program (its stacks run through the Go scheduler)
// and a JVM (libjvm.so is mapped) from the rest.
func runtimeOf(maps Mappings, pid int, threads map[int]*verdict.Thread) string {
	for _, th := range threads {
		for _, s := range th.Stacks {
			for _, f := range s.Frames {
				if f == "runtime.goexit" || f == "runtime.mstart" || f == "runtime.rt0_go" {
					return "go"
				}
			}
		}
	}
	if mapped, err := maps.Maps(pid); err == nil {
		for _, m := range mapped {
			if strings.HasSuffix(m.Path, "/libjvm.so") {
				return "jvm"
			}
		}
	}
	return ""
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }

var arch = runtime.GOARCH

// markGroups marks the thread rows of the groups the verdicts judged.
func markGroups(r *Report) {
	for _, v := range r.Verdicts {
		for _, m := range v.Threads {
			for i := range r.Threads {
				if r.Threads[i].TID == m.TID && r.Threads[i].Exited == 0 {
					r.Threads[i].Group = v.Group
				}
			}
		}
	}
}
