package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/cpuwhy/cpuwhy/internal/escape"
	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/target"
	"github.com/cpuwhy/cpuwhy/internal/taskiter"
	"github.com/cpuwhy/cpuwhy/internal/top"
	"github.com/cpuwhy/cpuwhy/internal/tui"
)

type topOptions struct {
	global  *globalOptions
	streams Streams

	spec       target.Spec
	threads    bool
	iterations int
	delay      time.Duration
	batch      bool
	json       bool
	sort       string
	limit      int
	width      int

	// isTerminal says whether the output is an interactive terminal; tests
	// replace it.
	isTerminal func() bool
}

func newTopCmd(g *globalOptions, s Streams) *cobra.Command {
	o := &topOptions{global: g, streams: s, isTerminal: func() bool { return stdoutIsTerminal(s) }}
	cmd := &cobra.Command{
		Use:   "top [PID]",
		Short: "Show processes and threads by CPU, with their containers",
		Long: `Show processes sorted by CPU (percent of one core, as top), with user and
system time, state, threads, RSS, container and PID inside the container.

With a target (a PID, --container, --name) it shows that process's threads:
name, CPU, state and the system call each sleeping thread is blocked in.

On a terminal it is a live view (keys: q quit, s/c/m/p/t/n sort, / filter,
enter threads of the selected process, esc back). Without a terminal, or
with --batch, -n or --json, it prints -n reports (default 1) -d apart.`,
		Example: `  cpuwhy top                      # live view of the host
  cpuwhy top -b -n 3 -d 2         # three text reports, two seconds apart
  cpuwhy top --container vpn      # the processes and threads of container vpn
  cpuwhy top 4677 --json          # one process and its threads, as JSON`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: pidCompletion,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := pidArg(args, &o.spec); err != nil {
				return err
			}
			if cmd.Flags().Changed("iterations") || cmd.Flags().Changed("json") {
				o.batch = true
			}
			return runTop(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	addTargetFlags(cmd, &o.spec)
	f.BoolVarP(&o.threads, "threads", "H", false, "show every process's threads (implied with one target)")
	intVar(f, &o.iterations, "iterations", "n", 1, topReports, "reports to print in batch mode")
	durationVar(f, &o.delay, "delay", "d", time.Second, topInterval, "interval between reports, in seconds or with a unit (500ms)")
	f.BoolVarP(&o.batch, "batch", "b", false, "print reports instead of the live view")
	f.BoolVar(&o.json, "json", false, "print each report as one line of JSON")
	f.StringVarP(&o.sort, "sort", "s", string(top.SortCPU), "sort by cpu, mem, pid, threads or name")
	intVar(f, &o.limit, "limit", "", 0, listedOrAll, "processes to print per report in text mode")
	intVar(f, &o.width, "width", "w", 120, widthRange, "command column width in text mode")
	_ = cmd.RegisterFlagCompletionFunc("sort", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		keys := make([]string, len(top.SortKeys))
		for i, k := range top.SortKeys {
			keys[i] = string(k)
		}
		return keys, cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

// pidArg sets spec.PID from a command's optional PID argument. A PID
// given both ways is refused, even twice the same: one of the two would
// be silently ignored, and the user may not know which (the other target
// flags are refused with it by spec.Validate).
func pidArg(args []string, spec *target.Spec) error {
	if len(args) == 0 {
		return nil
	}
	pid, err := strconv.Atoi(args[0])
	if err != nil || pid < pidRange.min || pid > pidRange.max {
		return usageError{fmt.Errorf("%q is not a PID (%s); name a process with --name REGEX", args[0], pidRange)}
	}
	if spec.PID != 0 {
		return usageError{fmt.Errorf("PID %d and -p %d both name the target: give one", pid, spec.PID)}
	}
	spec.PID = pid
	return nil
}

// pidCompletion completes a PID argument: nothing to offer from files.
func pidCompletion(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return nil, cobra.ShellCompDirectiveNoFileComp
}

// addTargetFlags binds the target selection flags every command shares.
func addTargetFlags(cmd *cobra.Command, spec *target.Spec) {
	f := cmd.Flags()
	intVar(f, &spec.PID, "pid", "p", 0, pidRange, "host PID of the target process")
	f.StringVarP(&spec.Container, "container", "c", "", "container name or id prefix (docker, containerd, cri-o, podman, nspawn, lxc)")
	intVar(f, &spec.NsPID, "ns-pid", "", 0, pidRange, "with --container: the target's PID as seen inside the container")
	f.StringVar(&spec.Name, "name", "", "regular expression on the process name (or command line)")
}

// stdoutIsTerminal says whether the live view can run: it needs a terminal
// to draw on, keys to read, and a TERM that says what the terminal is.
func stdoutIsTerminal(s Streams) bool {
	for _, stream := range []any{s.Out, s.In} {
		f, ok := stream.(*os.File)
		if !ok || !term.IsTerminal(int(f.Fd())) {
			return false
		}
	}
	t := os.Getenv("TERM")
	return t != "" && t != "dumb"
}

// view is what one top invocation shows: which processes each refresh
// scans and keeps.
type view struct {
	spec   top.Spec
	keep   func(*top.Process) bool
	single *target.Target // set when the view is one process
}

func runTop(ctx context.Context, o *topOptions) error {
	interval := o.delay
	sortKey, err := top.ParseSortKey(o.sort)
	if err != nil {
		return usageError{err}
	}
	resolver := o.global.resolver()
	v, err := buildView(ctx, o, o.global.selector(resolver))
	if err != nil {
		return err
	}
	topOpts := top.Options{Proc: o.global.procFS(), Containers: resolver}
	if root := topOpts.Proc.Root; root == "" || root == proc.DefaultRoot {
		// The host's threads in one read where BPF is allowed, opened
		// when a thread view first needs it; /proc where it is not.
		tasks := &taskiter.Lazy{}
		defer tasks.Close()
		topOpts.Tasks = tasks
	}
	sampler, err := top.NewSampler(topOpts)
	if err != nil {
		return err
	}
	if !o.batch && o.isTerminal() {
		return tui.Run(ctx, tui.Options{
			Sampler: sampler, Spec: v.spec, Keep: v.keep, Interval: interval, Sort: sortKey,
			In: o.streams.In, Out: o.streams.Out,
		})
	}
	if err := sampler.Prime(v.spec); err != nil {
		return err
	}
	for i := 0; i < o.iterations; i++ {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
		frame, err := sampler.Next(v.spec)
		if err != nil {
			return err
		}
		frame.Filter(v.keep)
		if v.single != nil && (len(frame.Processes) == 0 || exited(&frame.Processes[0])) {
			return target.Exited(*v.single)
		}
		frame.Sort(sortKey)
		if o.json {
			sampler.ResolveBlocked(frame.Processes)
			err = top.WriteJSON(o.streams.Out, frame)
		} else {
			shown := frame.Processes
			if o.limit > 0 && len(shown) > o.limit {
				shown = shown[:o.limit]
			}
			sampler.ResolveBlocked(shown)
			if i > 0 {
				escape.Fprintf(o.streams.Out, "\n")
			}
			err = top.WriteText(o.streams.Out, frame, top.TextOptions{Limit: o.limit, Width: o.width})
		}
		if err != nil {
			return fmt.Errorf("writing report: %w", err)
		}
	}
	return nil
}

// buildView turns the target flags into what each refresh scans. A single
// process (a PID, or --container with --ns-pid) is scanned alone; a
// container or a name pattern is re-matched on every refresh, so processes
// that start later are shown too.
func buildView(ctx context.Context, o *topOptions, sel *target.Selector) (view, error) {
	spec := o.spec
	v := view{spec: top.Spec{Threads: o.threads}, keep: func(*top.Process) bool { return true }}
	switch {
	case spec.IsZero():
		return v, spec.Validate()
	case spec.PID != 0 || spec.NsPID != 0:
		t, err := sel.Select(ctx, spec)
		if err != nil {
			return v, err
		}
		noteAccess(o, sel, t)
		v.single = &t
		v.spec = top.Spec{Threads: true, PIDs: []int{t.PID}}
		return v, nil
	}
	matches, err := sel.Match(spec)
	if err != nil {
		return v, err
	}
	if len(matches) == 1 {
		noteAccess(o, sel, matches[0])
		v.spec.Threads = true
	}
	switch {
	case spec.Container != "":
		id := matches[0].Container.ID
		v.keep = func(p *top.Process) bool { return p.Container != nil && p.Container.ID == id }
	case spec.Name != "":
		// A name match is repeated on every refresh, to catch new
		// processes; a command line match (the fallback) keeps the
		// processes found at the start, since re-matching command lines
		// would also catch the shell that started cpuwhy.
		re := regexp.MustCompile(spec.Name) // validated by Match
		byComm := re.MatchString(matches[0].Name)
		pids := map[int]bool{}
		for _, m := range matches {
			pids[m.PID] = true
		}
		v.keep = func(p *top.Process) bool {
			if byComm {
				return re.MatchString(p.Name)
			}
			return pids[p.PID]
		}
	}
	return v, nil
}

// noteAccess tells the user, without failing, what a missing privilege
// hides from the view.
func noteAccess(o *topOptions, sel *target.Selector, t target.Target) {
	err := sel.CheckTrace(t.PID)
	var pe *target.PrivilegeError
	if errors.As(err, &pe) {
		escape.Fprintf(o.streams.Err, "cpuwhy: note: %v; the syscall each thread is blocked in is not shown\n", err)
	}
}

// exited reports whether a process has ended but is not yet reaped by its
// parent: a zombie has no threads left to examine.
func exited(p *top.Process) bool { return p.State == "Z" || p.State == "X" }
