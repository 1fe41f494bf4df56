package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/cpuwhy/cpuwhy/internal/escape"
	"github.com/cpuwhy/cpuwhy/internal/fds"
	"github.com/cpuwhy/cpuwhy/internal/stack"
	"github.com/cpuwhy/cpuwhy/internal/syscalls"
	"github.com/cpuwhy/cpuwhy/internal/syscalls/ebpf"
	"github.com/cpuwhy/cpuwhy/internal/syscalls/ptrace"
	"github.com/cpuwhy/cpuwhy/internal/target"
)

type syscallsOptions struct {
	global  *globalOptions
	streams Streams

	spec      target.Spec
	duration  time.Duration
	json      bool
	mechanism string
	timeEvery int
	maxKeys   int
	stacks    bool
	noAttach  bool
	threads   int
	minCPU    float64
	exact     bool
}

func newSyscallsCmd(g *globalOptions, s Streams) *cobra.Command {
	o := &syscallsOptions{global: g, streams: s}
	cmd := &cobra.Command{
		Use:   "syscalls [PID]",
		Short: "Profile a process's system calls per thread: counts, time, errno and fds",
		Long: `Profile the system calls of one process for a window (-d), per thread:
every syscall with its count, rate, time, latency (p50, p99), results split
into success and each errno, and the file descriptors it was made on, with
what each fd is (a socket's protocol and addresses, a pipe, a file...).

The default mechanism, eBPF, counts in the kernel with no per-call traffic
to user space, so the target keeps almost all its speed. Without BPF (an old
kernel, or no CAP_BPF) cpuwhy falls back to ptrace, which stops the target
at every call: it says so, and how much slower the target ran.

With no target, the busiest process of the last second is profiled, and
the report says so; when even that one uses less than --min-cpu, nothing
is busy: cpuwhy says so in one line, with its figure, and exits 0.`,
		Example: `  cpuwhy syscalls 5072                 # three seconds of PID 5072
  cpuwhy syscalls --container vpn -d 10s
  cpuwhy syscalls --name vpnserver --json
  cpuwhy syscalls 5072 --stacks        # also where in the code the calls come from`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: pidCompletion,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := pidArg(args, &o.spec); err != nil {
				return err
			}
			return runSyscalls(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	addTargetFlags(cmd, &o.spec)
	durationVar(f, &o.duration, "duration", "d", syscalls.DefaultDuration, diagnoseWindow, "how long to trace")
	f.BoolVar(&o.json, "json", false, "print the report as JSON")
	f.StringVar(&o.mechanism, "mechanism", "auto", "ebpf, ptrace, or auto (eBPF, else ptrace)")
	intVar(f, &o.timeEvery, "time-every", "", syscalls.DefaultTimeEvery, timeEvery, "time one call in N per thread; 1 times every call")
	intVar(f, &o.maxKeys, "max-keys", "", syscalls.DefaultMaxKeys, maxKeys, "bound of the aggregation table (thread, syscall, result, fd)")
	addExactFlag(cmd, &o.exact)
	f.BoolVar(&o.stacks, "stacks", false, "record the user stacks at syscall entry of the hottest calls")
	f.BoolVar(&o.noAttach, "no-attach", false, "with --stacks: never ask the target for the names of its code (a JVM is otherwise asked for its perf map through its attach mechanism)")
	intVar(f, &o.threads, "threads", "", 10, listedOrAll, "threads shown in the text report")
	addMinCPUFlag(cmd, &o.minCPU)
	_ = cmd.RegisterFlagCompletionFunc("mechanism", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"auto", "ebpf", "ptrace"}, cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

func runSyscalls(ctx context.Context, o *syscallsOptions) error {
	if err := checkMinCPU(o.minCPU); err != nil {
		return err
	}
	sel := o.global.selector(o.global.resolver())
	sel.MinCPU = o.minCPU
	tracers, err := tracers(o.mechanism, sel.CheckTrace)
	if err != nil {
		return usageError{err}
	}
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
	opts := syscalls.Options{Duration: o.duration, TimeEvery: o.timeEvery, MaxKeys: o.maxKeys, Stacks: o.stacks, Exact: o.exact}
	// The stacks are named as every other command names them, by a
	// resolver made before the trace: a runtime whose frame chains the
	// tracer reads with each stack (CPython's) says how.
	var names *stack.Resolver
	if o.stacks {
		names, _ = stack.New(t.PID, stack.Options{FS: o.global.procFS(), NsPID: t.NsPID, NoAttach: o.noAttach})
	}
	if names != nil {
		defer names.Close()
		if w := names.ChainWalker(); w != nil {
			opts.Chains = w
		}
	}
	o.progress("tracing %s for %v", t, o.duration)
	profile, _, err := syscalls.TraceFirst(ctx, t.PID, opts, tracers, func(err error, next syscalls.Mechanism) {
		escape.Fprintf(o.streams.Err, "cpuwhy: note: %v; falling back to %s, which stops the target at every call and slows it down\n", err, next)
	})
	// Interrupted (Ctrl-C), a trace still reports what it saw, as
	// strace -c does.
	interrupted := ctx.Err() != nil && profile != nil
	if err != nil && !interrupted {
		var denied *target.PrivilegeError
		if errors.Is(err, context.Canceled) || errors.As(err, &denied) {
			return err // says which process already
		}
		return fmt.Errorf("tracing %s: %w", t, err)
	}
	if interrupted && profile.Ended == "" {
		profile.Ended = fmt.Sprintf("interrupted after %.1f s", profile.Duration.Seconds())
	}
	report := syscalls.Summarize(profile, "", fds.NewDescriber(o.global.procFS()))
	if names != nil && len(profile.Stacks) > 0 {
		for i, cs := range report.Stacks {
			names.Chain(cs.Chain)
			for _, f := range names.Frames(cs.TID, nil, cs.PCs) {
				report.Stacks[i].Frames = append(report.Stacks[i].Frames, f.Name())
			}
		}
	}
	report.Name, report.NsPID, report.Container, report.TimeEvery, report.Picked = t.Name, t.NsPID, t.Container, o.timeEvery, t.Picked
	if o.json {
		return syscalls.WriteJSON(o.streams.Out, report)
	}
	return syscalls.WriteText(o.streams.Out, report, syscalls.TextOptions{Threads: o.threads})
}

// tracers lists the syscall tracers --mechanism allows, in the order to try
// them; check is asked before ptrace stops the target.
func tracers(mechanism string, check func(pid int) error) ([]syscalls.Candidate, error) {
	bpf := syscalls.Candidate{Mechanism: syscalls.EBPF, New: func() syscalls.Tracer { return ebpf.New() }}
	pt := syscalls.Candidate{Mechanism: syscalls.Ptrace, New: func() syscalls.Tracer { return ptrace.New() }, Check: check}
	switch mechanism {
	case "auto", "":
		return []syscalls.Candidate{bpf, pt}, nil
	case string(syscalls.EBPF):
		return []syscalls.Candidate{bpf}, nil
	case string(syscalls.Ptrace):
		return []syscalls.Candidate{pt}, nil
	}
	return nil, fmt.Errorf("--mechanism %q: use ebpf, ptrace or auto", mechanism)
}

// progress tells a person at a terminal what is going on during the
// window; scripts and pipes get nothing on stderr but errors and notes.
func (o *syscallsOptions) progress(format string, args ...any) {
	if f := stderrTerminal(o.streams); f != nil {
		escape.Fprintf(f, "cpuwhy: "+format+"\n", args...)
	}
}

// addExactFlag adds --exact: count every syscall, as perf stat and bcc's
// syscount do, where cpuwhy by default counts a target making hundreds of
// thousands of calls a second in slices of the window, since counting
// every one slows it by a quarter.
func addExactFlag(cmd *cobra.Command, exact *bool) {
	cmd.Flags().BoolVar(exact, "exact", false, fmt.Sprintf(
		"count every syscall, however fast the target makes them (by default a target making more than %dk calls a second is counted in slices of the window, scaled, which costs it about 1%% instead of up to a quarter of its speed)",
		syscalls.SampleAbove/1000))
}
