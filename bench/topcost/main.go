// Command topcost measures the CPU one `cpuwhy top` refresh costs, beside
// procps top and ps measured in the same run, on a host loaded with
// thousands of threads. See bench/README.md for the method.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/sys"
	"github.com/cpuwhy/cpuwhy/internal/taskiter"
)

// The main goroutine stays on the main thread for the whole run, so that
// RUSAGE_THREAD readings around a refresh are that goroutine's own, and so
// that the load processes, started with a parent-death signal, are tied to
// a thread that lives as long as the process (PR_SET_PDEATHSIG fires when
// the creating thread exits, not the process).
func init() { runtime.LockOSThread() }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "topcost: %v\n", err)
		os.Exit(1)
	}
}

// options are the command-line settings of one run.
type options struct {
	levels        []int         // extra threads to start, one measurement per level
	procs         int           // processes the threads are spread over
	busy          int           // busy threads in the first process
	refreshes     int           // measured refreshes per cpuwhy mode and level
	rounds        int           // interleaved rounds the refreshes are split into
	interval      time.Duration // between two refreshes, as the -d of top
	topIterations int           // extra top iterations in each run of top
	modes         map[string]bool
	firstIterLoad time.Duration // CPU of the process's first taskiter.Open
	compare       bool          // also measure top and ps
	profile       string        // write a CPU profile of extra cold thread refreshes here
	goal          time.Duration
	progress      io.Writer
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("topcost", flag.ContinueOnError)
	fs.SetOutput(stderr)
	levels := fs.String("levels", "1000,10000", "comma-separated numbers of extra threads to start, measured one after the other")
	procs := fs.Int("procs", 10, "processes the extra threads are spread over")
	busy := fs.Int("busy", 2, "threads of the first process that each burn a tenth of a core, so its threads are re-read on every refresh")
	refreshes := fs.Int("refreshes", 20, "measured refreshes per cpuwhy mode and level")
	rounds := fs.Int("rounds", 5, "rounds the measurements are interleaved in (top and ps run once per round)")
	interval := fs.Duration("interval", 250*time.Millisecond, "time between two refreshes")
	topIter := fs.Int("top-iterations", 4, "iterations of top beyond the first, to difference against a one-iteration run")
	modes := fs.String("modes", strings.Join(modeNames(), ","), "cpuwhy modes to measure")
	noCompare := fs.Bool("no-compare", false, "do not run top and ps (for profiling)")
	profile := fs.String("profile", "", "after measuring, write a pprof CPU profile of extra cold --threads refreshes at the last level")
	goal := fs.Duration("goal", 30*time.Millisecond, "CPU budget of one refresh")
	quiet := fs.Bool("q", false, "no progress on stderr")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	o := options{
		procs: *procs, busy: *busy, refreshes: *refreshes, rounds: *rounds,
		interval: *interval, topIterations: *topIter, compare: !*noCompare,
		profile: *profile, goal: *goal, progress: stderr, modes: map[string]bool{},
	}
	if *quiet {
		o.progress = io.Discard
	}
	for _, s := range strings.Split(*levels, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < o.procs {
			return o, fmt.Errorf("-levels: %q is not a number of threads of at least -procs (%d)", s, o.procs)
		}
		o.levels = append(o.levels, n)
	}
	known := map[string]bool{}
	for _, m := range modeNames() {
		known[m] = true
	}
	for _, m := range strings.Split(*modes, ",") {
		if !known[m] {
			return o, fmt.Errorf("-modes: unknown mode %q (have %s)", m, strings.Join(modeNames(), ", "))
		}
		o.modes[m] = true
	}
	switch {
	case o.procs < 1:
		return o, fmt.Errorf("-procs %d: need at least one process", o.procs)
	case o.busy < 0:
		return o, fmt.Errorf("-busy %d: cannot be negative", o.busy)
	case o.rounds < 1 || o.refreshes < o.rounds:
		return o, fmt.Errorf("-refreshes %d -rounds %d: need at least one refresh per round", o.refreshes, o.rounds)
	case o.topIterations < 1:
		return o, fmt.Errorf("-top-iterations %d: need at least one", o.topIterations)
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	prog, err := compileThreads()
	if err != nil {
		return err
	}
	// The first load of the task iterator in a process parses the
	// kernel's BTF, which later loads reuse: a `cpuwhy top -H` pays it
	// once, before its first frame.
	if o.modes["cold-iter/threads"] || o.modes["steady-iter/threads"] {
		c0 := sys.ProcessCPU()
		it, err := taskiter.Open()
		if err != nil {
			return fmt.Errorf("the iterator modes need the BPF task iterator: %w", err)
		}
		o.firstIterLoad = sys.ProcessCPU().Sub(c0).Total()
		it.Close()
	}
	var results []levelResult
	for i, level := range o.levels {
		r, err := measureLevel(ctx, o, prog, level, o.profile != "" && i == len(o.levels)-1)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	writeReport(stdout, o, results)
	return nil
}
