package cli

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/cpuwhy/cpuwhy/internal/diagnose"
	"github.com/cpuwhy/cpuwhy/internal/escape"
	"github.com/cpuwhy/cpuwhy/internal/target"
)

// diagnoseOptions are the root command's: `cpuwhy [TARGET]`.
type diagnoseOptions struct {
	global  *globalOptions
	streams Streams

	spec      target.Spec
	duration  time.Duration
	json      bool
	output    string
	format    string
	frequency int
	mechanism string
	debugDirs []string
	noAttach  bool
	threads   int
	minCPU    float64
	exact     bool
}

// selectWindow is how long CPU is measured to find the busiest process
// when none is named: short, since the diagnosis window follows.
const selectWindow = 500 * time.Millisecond

// bindDiagnose makes root run the diagnosis.
func bindDiagnose(root *cobra.Command, g *globalOptions, s Streams) {
	o := &diagnoseOptions{global: g, streams: s}
	root.Use = "cpuwhy [PID]"
	root.Example = `  sudo cpuwhy                      # the busiest process on the host
  sudo cpuwhy 5072                 # one process, by host PID
  sudo cpuwhy --container vpn      # the busiest process of a container
  sudo cpuwhy --name vpnserver -d 10s -o vpn.html --json > verdict.json`
	root.Args = cobra.MaximumNArgs(1)
	root.ValidArgsFunction = pidCompletion
	root.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 1 {
			if _, err := strconv.Atoi(args[0]); err != nil {
				return usageError{fmt.Errorf("%q is neither a PID nor a command (top, syscalls, record, dump, watch, agent); name a process with --name REGEX", args[0])}
			}
		}
		if err := pidArg(args, &o.spec); err != nil {
			return err
		}
		return runDiagnose(cmd.Context(), o)
	}
	f := root.Flags()
	addTargetFlags(root, &o.spec)
	durationVar(f, &o.duration, "duration", "d", diagnose.DefaultDuration, diagnoseWindow, "how long to observe")
	f.BoolVar(&o.json, "json", false, "print the report as JSON")
	f.StringVarP(&o.output, "output", "o", "", "also write the stack profile: .pb.gz, .folded or .html")
	f.StringVar(&o.format, "format", "", "profile format (pprof, folded, html), whatever the file name")
	intVar(f, &o.frequency, "frequency", "F", 99, frequency, "stack samples per second of CPU, per thread")
	f.StringVar(&o.mechanism, "mechanism", "auto", "syscall tracing: ebpf, ptrace, or auto (eBPF, else ptrace)")
	addExactFlag(root, &o.exact)
	f.BoolVar(&o.noAttach, "no-attach", false, "never ask the target for the names of its code: a JVM is otherwise asked, through its attach mechanism, for the perf map of the code its JIT compiled (jcmd Compiler.perfmap)")
	f.StringSliceVar(&o.debugDirs, "debug-dir", nil, "directory of debug files (.build-id/xx/rest.debug, <path>.debug, debuglink names)")
	intVar(f, &o.threads, "threads", "", 5, listed, "threads listed in the text report")
	addMinCPUFlag(root, &o.minCPU)
}

func runDiagnose(ctx context.Context, o *diagnoseOptions) error {
	format, err := outputFormat(o.output, o.format)
	if err != nil {
		return usageError{err}
	}
	if err := checkMinCPU(o.minCPU); err != nil {
		return err
	}
	sel := o.global.selector(o.global.resolver())
	sel.MinCPU = o.minCPU
	sel.KernelThreads = true // the diagnosis explains a kernel thread
	tracers, err := tracers(o.mechanism, sel.CheckTrace)
	if err != nil {
		return usageError{err}
	}
	out, err := openOutput(ctx, o.streams, o.output)
	if err != nil {
		return err
	}
	defer out.Close()
	sel.Window = selectWindow
	if o.spec.IsZero() {
		o.progress("finding the busiest process")
	}
	t, err := sel.Select(ctx, o.spec)
	if idle, err := nothingBusy(o.streams.Out, err, o.json); idle {
		return err
	}
	if err != nil {
		return err
	}
	progress, endProgress := o.progressFunc(t)
	opts := diagnose.Options{
		FS: o.global.procFS(), Duration: o.duration, Frequency: o.frequency, DebugDirs: o.debugDirs, NoAttach: o.noAttach,
		Tracers: tracers, Progress: progress, ExactCounts: o.exact,
	}
	res, err := diagnose.Run(ctx, t, opts)
	endProgress()
	if err != nil {
		return err
	}
	if out != nil {
		if res.Profile == nil {
			res.Report.Notes = append(res.Report.Notes, "no stack profile was recorded: nothing written to "+o.output)
		} else if err := writeProfile(out, format, res.Profile); err != nil {
			return err
		} else {
			res.Report.Notes = append(res.Report.Notes, "profile written to "+o.output)
		}
	}
	if o.json {
		return diagnose.WriteJSON(o.streams.Out, res.Report)
	}
	return diagnose.WriteText(o.streams.Out, res.Report, diagnose.TextOptions{Threads: o.threads})
}

// stderrTerminal returns stderr when it is a terminal: progress is for a
// person watching, not for pipes and logs.
func stderrTerminal(s Streams) *os.File {
	f, ok := s.Err.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return f
}

func (o *diagnoseOptions) progress(format string, args ...any) {
	if f := stderrTerminal(o.streams); f != nil {
		escape.Fprintf(f, "cpuwhy: "+format+"\n", args...)
	}
}

func (o *diagnoseOptions) progressFunc(t target.Target) (report func(time.Duration), end func()) {
	return progressLine(o.streams, fmt.Sprintf("watching %s for %v: threads, syscalls, stacks (Ctrl-C for a verdict on what was seen so far)", t, o.duration), o.duration)
}
