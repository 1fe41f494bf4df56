package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/cpuwhy/cpuwhy/internal/container"
	"github.com/cpuwhy/cpuwhy/internal/diagnose"
	"github.com/cpuwhy/cpuwhy/internal/escape"
	"github.com/cpuwhy/cpuwhy/internal/flame"
	"github.com/cpuwhy/cpuwhy/internal/reportdir"
	"github.com/cpuwhy/cpuwhy/internal/stack"
	"github.com/cpuwhy/cpuwhy/internal/syscalls"
	"github.com/cpuwhy/cpuwhy/internal/syscalls/ebpf"
	"github.com/cpuwhy/cpuwhy/internal/target"
	"github.com/cpuwhy/cpuwhy/internal/taskiter"
	"github.com/cpuwhy/cpuwhy/internal/watch"
)

// The bounds of watch's flags (see flags.go for the others):
var (
	// watchCPU bounds --cpu: below 1% of a core every process that wakes
	// up would trigger.
	watchCPU = floatRange{min: 1, max: 100_000}
	// watchFor bounds --for: under a second is one scan of /proc; over a
	// day is not a spike.
	watchFor = durationRange{min: time.Second, max: 24 * time.Hour}
	// watchCooldown bounds --cooldown; 0 diagnoses a process that stays
	// hot again every --for.
	watchCooldown = durationRange{min: 0, max: 7 * 24 * time.Hour}
	// watchInterval bounds the scan interval: under 100 ms the scan
	// itself costs more than the spikes it looks for.
	watchInterval = durationRange{min: 100 * time.Millisecond, max: time.Minute}
	// maxReports bounds --max-reports, and so the disk a watch may fill.
	maxReports = intRange{min: 1, max: 100_000}
	// watchQueue bounds --queue: each waiting trigger is a process that
	// will be diagnosed late.
	watchQueue = intRange{min: 1, max: 100}
)

// watchOptions are `cpuwhy watch`'s, and the watch part of `cpuwhy agent`.
type watchOptions struct {
	global  *globalOptions
	streams Streams

	spec       target.Spec
	cpu        float64
	forDur     time.Duration
	cooldown   time.Duration
	interval   time.Duration
	dir        string
	maxReports int
	queue      int
	duration   time.Duration
	frequency  int
	mechanism  string
	debugDirs  []string
	scanWith   string
}

func newWatchCmd(g *globalOptions, s Streams) *cobra.Command {
	o := &watchOptions{global: g, streams: s}
	cmd := &cobra.Command{
		Use:   "watch [PID]",
		Short: "Wait for a CPU spike and diagnose it on its own, keeping the reports",
		Long: `watch reads every process's CPU once a second (one BPF program run,
or /proc: --scan-with) and, when a process (or one of its threads) stays
at or above --cpu percent of a core for --for, runs the diagnosis of
'cpuwhy PID' on it (-d window) and keeps the report in --dir:
<UTC time>-<pid>-<name>.json (the --json document), .txt (the text report)
and .html (the flame graph). It prints one line per diagnosis. Processes
started after watch began are watched too. One diagnosis runs at a time; a
process is not diagnosed again within --cooldown; --dir keeps the newest
--max-reports reports. Ctrl-C or SIGTERM stops it.

Syscalls are traced with eBPF only, unless --mechanism says otherwise:
ptrace stops the target at every call, which a watch never does unasked.`,
		Example: `  sudo cpuwhy watch                              # every process of the host
  sudo cpuwhy watch --container vpn --cpu 50 --for 10s
  sudo cpuwhy watch --name vpnserver --dir /var/lib/cpuwhy`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := pidArg(args, &o.spec); err != nil {
				return err
			}
			return runWatch(cmd.Context(), o, nil)
		},
	}
	o.bind(cmd)
	return cmd
}

// bind adds the watch flags to cmd.
func (o *watchOptions) bind(cmd *cobra.Command) {
	f := cmd.Flags()
	addTargetFlags(cmd, &o.spec)
	floatVar(f, &o.cpu, "cpu", "", watch.DefaultCPU, watchCPU, "trigger at this CPU, in % of a core, of a process or one of its threads")
	durationVar(f, &o.forDur, "for", "", watch.DefaultFor, watchFor, "trigger when the CPU stays at or above --cpu this long")
	durationVar(f, &o.cooldown, "cooldown", "", watch.DefaultCooldown, watchCooldown, "after a diagnosis, leave the process alone this long")
	durationVar(f, &o.interval, "scan-interval", "", watch.DefaultInterval, watchInterval, "time between two scans of /proc")
	f.StringVar(&o.dir, "dir", "./cpuwhy-reports", "directory of the reports (made if missing)")
	intVar(f, &o.maxReports, "max-reports", "", reportdir.DefaultMax, maxReports, "reports kept in --dir, the oldest removed")
	intVar(f, &o.queue, "queue", "", watch.DefaultQueue, watchQueue, "triggers that may wait while a diagnosis runs")
	durationVar(f, &o.duration, "duration", "d", diagnose.DefaultDuration, diagnoseWindow, "the diagnosis window")
	intVar(f, &o.frequency, "frequency", "F", 99, frequency, "stack samples per second of CPU, per thread")
	f.StringVar(&o.mechanism, "mechanism", "ebpf", "syscall tracing: ebpf, ptrace, or auto (eBPF, else ptrace, which stops the target at every call)")
	f.StringSliceVar(&o.debugDirs, "debug-dir", nil, "directory of debug files (.build-id/xx/rest.debug, <path>.debug, debuglink names)")
	f.StringVar(&o.scanWith, "scan-with", scanAuto, "how scans read each process's CPU: bpf (one BPF program run), proc (a stat file per process), or auto (bpf, else proc)")
}

// Values of --scan-with.
const (
	scanAuto = "auto"
	scanBPF  = "bpf"
	scanProc = "proc"
)

// lister opens the BPF listing of processes for the scans, as --scan-with
// says; nil to read /proc. With auto, a listing that cannot run here is
// said in one line and /proc is read.
func (o *watchOptions) lister() (*taskiter.Procs, error) {
	if o.scanWith == scanProc {
		return nil, nil
	}
	p, err := taskiter.OpenProcs()
	if err == nil {
		if err = watch.CheckLister(p, o.global.procFS()); err != nil {
			p.Close()
		}
	}
	if err != nil {
		if o.scanWith == scanBPF {
			return nil, fmt.Errorf("--scan-with bpf: %w", err)
		}
		escape.Fprintf(o.streams.Err, "cpuwhy: scans read /proc: %v\n", err)
		return nil, nil
	}
	return p, nil
}

// watchObserver is told what a watch does, besides the line it prints:
// the agent's metrics and exporters.
type watchObserver interface {
	Skipped(t watch.Trigger, why watch.Skip)
	// Diagnosed is told of a diagnosis before its line is printed, and
	// must be quick; Export after, and may take its time (a push).
	Diagnosed(t watch.Trigger, tgt target.Target, res *diagnose.Result, e reportdir.Entry)
	Export(t watch.Trigger, tgt target.Target, res *diagnose.Result)
	Failed(t *watch.Trigger, kind string, err error)
	Scanned(at time.Time)
}

// Kinds of error a watch counts.
const (
	errScan      = "scan"         // /proc could not be scanned
	errGone      = "target_gone"  // the process exited before or during its diagnosis
	errDiagnose  = "diagnose"     // the diagnosis failed otherwise
	errWrite     = "write_report" // the report could not be written
	errPrivilege = "privilege"    // no instrument could attach
)

// runWatch runs the watch until ctx ends; obs may be nil.
func runWatch(ctx context.Context, o *watchOptions, obs watchObserver) error {
	r, err := newWatchRunner(ctx, o, obs)
	if err != nil {
		return err
	}
	return r.run(ctx)
}

// run watches until ctx ends: then it stops cleanly, the diagnosis under
// way abandoned.
func (r *watchRunner) run(ctx context.Context) error {
	o := r.o
	defer r.close()
	escape.Fprintf(o.streams.Err, "cpuwhy: watching %s for %.0f%% of a core over %v; reports in %s\n",
		r.scope, o.cpu, shortDuration(o.forDur), o.dir)
	err := r.w.Run(ctx, r)
	if errors.Is(err, context.Canceled) {
		escape.Fprintf(o.streams.Err, "cpuwhy: stopped\n")
		return nil // asked to stop: a clean end
	}
	return err
}

// close releases what the runner keeps loaded for the diagnoses and the
// scans.
func (r *watchRunner) close() {
	if r.procs != nil {
		r.procs.Close()
	}
	r.kept.Close()
}

// watchRunner diagnoses what the watch triggers and keeps the reports.
type watchRunner struct {
	o       *watchOptions
	obs     watchObserver
	w       *watch.Watcher
	sel     *target.Selector
	tracers []syscalls.Candidate
	dir     reportdir.Dir
	scope   string
	outMu   sync.Mutex
	procs   *taskiter.Procs // the scans' BPF listing, closed by run; nil: /proc
	shared  *stack.Shared   // what the diagnoses share
	kept    *ebpf.Tracer    // the diagnoses' eBPF tracer, closed by run
	// serverCPU, set by the agent, is its HTTP server's CPU.
	serverCPU func() time.Duration
}

// otherCPU is the CPU the watch's scans and the agent's server have used,
// which a diagnosis does not bill itself.
func (r *watchRunner) otherCPU() time.Duration {
	d := r.w.ScanCPU()
	if r.serverCPU != nil {
		d += r.serverCPU()
	}
	return d
}

func newWatchRunner(ctx context.Context, o *watchOptions, obs watchObserver) (*watchRunner, error) {
	if err := o.spec.Validate(); err != nil {
		return nil, err
	}
	if o.scanWith != scanAuto && o.scanWith != scanBPF && o.scanWith != scanProc {
		return nil, usageError{fmt.Errorf("--scan-with %q: give bpf, proc or auto", o.scanWith)}
	}
	resolver := o.global.resolver()
	sel := o.global.selector(resolver)
	tracers, err := tracers(o.mechanism, sel.CheckTrace)
	if err != nil {
		return nil, usageError{err}
	}
	// One eBPF tracer for all the diagnoses, which keeps its programs
	// loaded from one to the next (loaded and verified once, not per
	// diagnosis); closed by run.
	kept := ebpf.NewKept()
	for i := range tracers {
		if tracers[i].Mechanism == syscalls.EBPF {
			tracers[i].New = func() syscalls.Tracer { return kept }
		}
	}
	// Reports hold the targets' command lines and fds: not for every
	// user of the host.
	if err := os.MkdirAll(o.dir, 0o750); err != nil {
		return nil, fmt.Errorf("--dir %s: %w", o.dir, err)
	}
	match, scope, err := watchScope(ctx, sel, resolver, o.spec)
	if err != nil {
		return nil, err
	}
	// The kept programs run in the targets' syscalls: their frames in
	// kernel stacks are named once the symbols are read after they load.
	shared := stack.NewShared()
	shared.FollowKernelCode(kept.Loads)
	r := &watchRunner{o: o, obs: obs, sel: sel, tracers: tracers, scope: scope, shared: shared, kept: kept,
		dir: reportdir.Dir{Path: o.dir, Max: o.maxReports}}
	procs, err := o.lister()
	if err != nil {
		return nil, err
	}
	opts := watch.Options{
		FS: o.global.procFS(), CPU: o.cpu, For: o.forDur, Cooldown: o.cooldown,
		Interval: o.interval, Queue: o.queue, Match: match,
	}
	if procs != nil {
		opts.Procs, r.procs = procs, procs
	}
	r.w = watch.New(opts)
	return r, nil
}

// watchScope turns the target flags into the watch's filter, and says
// what is watched.
func watchScope(ctx context.Context, sel *target.Selector, res *container.Resolver, spec target.Spec) (func(int, string) bool, string, error) {
	switch {
	case spec.PID != 0 || spec.NsPID != 0:
		t, err := sel.Select(ctx, spec)
		if err != nil {
			return nil, "", err
		}
		return func(pid int, _ string) bool { return pid == t.PID }, "process " + t.String(), nil
	case spec.Container != "":
		q := spec.Container
		return func(pid int, _ string) bool {
			c, err := res.Lookup(pid)
			return err == nil && c != nil && (c.Name == q || c.ID == q || strings.HasPrefix(c.ID, strings.ToLower(q)))
		}, "container " + q, nil
	case spec.Name != "":
		re, err := regexp.Compile(spec.Name)
		if err != nil {
			return nil, "", usageError{fmt.Errorf("--name %q is not a regular expression: %w", spec.Name, err)}
		}
		fs := sel.Proc
		return func(pid int, comm string) bool {
			return re.MatchString(comm) || re.MatchString(fs.Identity(pid).Cmdline)
		}, fmt.Sprintf("processes named %q", spec.Name), nil
	}
	return nil, "every process", nil
}

// Diagnose implements watch.Handler.
func (r *watchRunner) Diagnose(ctx context.Context, trig watch.Trigger) {
	t, err := r.sel.Select(ctx, target.Spec{PID: trig.PID})
	if err != nil {
		r.fail(&trig, errGone, fmt.Errorf("PID %d (%s) before its diagnosis: %w", trig.PID, trig.Name, err))
		return
	}
	res, err := diagnose.Run(ctx, t, diagnose.Options{
		FS: r.o.global.procFS(), Duration: r.o.duration, Frequency: r.o.frequency,
		DebugDirs: r.o.debugDirs, Tracers: r.tracers, Shared: r.shared, OtherCPU: r.otherCPU,
		// A spike may end with its process: what was seen is the
		// evidence, kept rather than thrown away.
		KeepExited: true,
	})
	if err != nil {
		if ctx.Err() != nil {
			return // stopping
		}
		kind := errDiagnose
		var blind *diagnose.BlindError
		switch {
		case errors.Is(err, diagnose.ErrGone):
			kind = errGone
		case errors.As(err, &blind) && blind.Privilege != nil:
			kind = errPrivilege
		}
		r.fail(&trig, kind, err)
		return
	}
	files := reportdir.Files{
		reportdir.JSON: func(w io.Writer) error { return diagnose.WriteJSON(w, res.Report) },
		reportdir.Text: func(w io.Writer) error { return diagnose.WriteText(w, res.Report, diagnose.TextOptions{}) },
	}
	if res.Profile != nil {
		files[reportdir.HTML] = func(w io.Writer) error { return flame.Write(w, flame.FormatHTML, res.Profile) }
	}
	e, err := r.dir.Write(trig.At, t.PID, t.Name, files)
	// Counted before the line is printed: whoever reads the line and
	// then the metrics finds the verdicts there, whether the report could
	// be written or not.
	if r.obs != nil {
		r.obs.Diagnosed(trig, t, res, e)
	}
	if err != nil {
		r.fail(&trig, errWrite, err)
	} else {
		r.line(trig, t, res.Report, r.dir.File(e, reportdir.JSON))
	}
	if r.obs != nil {
		r.obs.Export(trig, t, res)
	}
}

// line prints one event: when, which process, its verdicts, the report.
func (r *watchRunner) line(trig watch.Trigger, t target.Target, rep *diagnose.Report, path string) {
	var b strings.Builder
	where := ""
	if c := t.ContainerLabel(); c != "" {
		where = " in " + c
	}
	for i, v := range rep.Verdicts {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(string(v.Pattern))
	}
	hot := ""
	if trig.Thread != nil {
		hot = fmt.Sprintf(", thread %s (TID %d) %.0f%%", trig.Thread.Name, trig.Thread.TID, trig.Thread.CPU)
	}
	r.outMu.Lock()
	defer r.outMu.Unlock()
	escape.Fprintf(r.o.streams.Out, "%s %d (%s)%s at %.0f%% for %.0f s%s: %s: %s\n",
		trig.At.UTC().Format(time.RFC3339), t.PID, t.Name, where, trig.CPU, trig.At.Sub(trig.Since).Seconds(), hot, b.String(), path)
}

// Skipped implements watch.Handler: a process in its cooldown is no
// event (it would be one line every --for); a full queue is.
func (r *watchRunner) Skipped(t watch.Trigger, why watch.Skip) {
	if why == watch.SkipQueueFull {
		r.outMu.Lock()
		escape.Fprintf(r.o.streams.Err, "cpuwhy: %s %d (%s) at %.0f%%: not diagnosed: %d diagnoses already waiting (--queue)\n",
			t.At.UTC().Format(time.RFC3339), t.PID, t.Name, t.CPU, r.o.queue)
		r.outMu.Unlock()
	}
	if r.obs != nil {
		r.obs.Skipped(t, why)
	}
}

// Scanned implements watch.Handler.
func (r *watchRunner) Scanned(at time.Time) {
	if r.obs != nil {
		r.obs.Scanned(at)
	}
}

// ScanFailed implements watch.Handler.
func (r *watchRunner) ScanFailed(err error) { r.fail(nil, errScan, err) }

func (r *watchRunner) fail(t *watch.Trigger, kind string, err error) {
	r.outMu.Lock()
	when := time.Now()
	if t != nil {
		when = t.At
	}
	escape.Fprintf(r.o.streams.Err, "cpuwhy: %s %s: %v\n", when.UTC().Format(time.RFC3339), kind, err)
	r.outMu.Unlock()
	if r.obs != nil {
		r.obs.Failed(t, kind, err)
	}
}
