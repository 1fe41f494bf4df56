// Command syscallcost measures what tracing a syscall-heavy process costs
// it: the call rate of a target doing non-blocking recvfrom in a loop (the
// seed's busy poll), untraced and under each tracer, side by side in one
// run, printed as ratios to the untraced rate.
//
// The target is the busypoll scenario pinned to one core; its own count of
// recvfrom calls (written on SIGUSR1) is the measure, so no tracer's figure
// is trusted. Each tracer is started, given a settle time to attach, and
// the target's rate is taken over a window while it is attached; untraced
// windows are taken between tracers, and each tracer's ratio is to the
// mean of the untraced windows beside it, so drift in the machine's speed
// over the run weighs on all alike. Rates are per second of the poller's
// time on a CPU (schedstat), so time the shared machine gives to others is
// not counted against a tracer.
//
// A tracer that is not installed, needs tracefs where it cannot be mounted,
// or exits before its window is skipped with the reason in its row; the
// others are measured all the same. tracefs is mounted for bpftrace and
// perf trace when it is not (and unmounted at the end).
//
// Usage: go run ./bench/syscallcost [-window 3s] [-rounds 3]
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cpuwhy/cpuwhy/bench/internal/cpuwhybin"
	"github.com/cpuwhy/cpuwhy/bench/internal/pytarget"
	"github.com/cpuwhy/cpuwhy/test/scenario"
)

type options struct {
	window   time.Duration
	settle   time.Duration
	rounds   int
	cpu      int
	cpuwhy   string
	baseline string
	tracers  []string
	stats    time.Duration // window of the kernel's BPF statistics, after the rate's
	python   string        // CPython for the Python target; "": none
}

// pyTracers are measured on the Python target: counting alone (the
// walk is not loaded), stacks with each one's Python chain read in the
// kernel, and stacks without (CPUWHY_PYTHON_NO_BPF=1: the chains of the
// stacks read live after the trace, as before the walk was linked in).
var pyTracers = []string{"py-cpuwhy-timed", "py-cpuwhy-stacks", "py-cpuwhy-stacks-nochain"}

func main() {
	if len(os.Args) == 3 && os.Args[1] == floorArg {
		if err := runFloor(os.Args[2]); err != nil {
			fmt.Fprintf(os.Stderr, "syscallcost: %v\n", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "syscallcost: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("syscallcost", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&o.window, "window", 3*time.Second, "measuring window per tracer")
	fs.DurationVar(&o.settle, "settle", 2*time.Second, "time a tracer gets to attach before the window")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds over all tracers")
	fs.IntVar(&o.cpu, "cpu", 1, "core the target is pinned to")
	fs.StringVar(&o.cpuwhy, "cpuwhy", "", "cpuwhy binary (default: built from this module)")
	fs.DurationVar(&o.stats, "bpf-stats", time.Second, "after each BPF tracer's window, a window this long with the kernel's BPF statistics on, for its programs' ns per call (0: none)")
	fs.StringVar(&o.baseline, "baseline", "", "another cpuwhy binary (an older build) measured in the same run as tracers baseline and baseline-timed")
	fs.StringVar(&o.python, "python", pytarget.Find(), "CPython for the Python target (pypoll.py), measured after busypoll under "+strings.Join(pyTracers, ", ")+"; \"\": none")
	tracers := fs.String("tracers", "floor,cpuwhy,cpuwhy-timed,cpuwhy-sampled,bpftrace,perf-trace,strace", "tracers to compare, in order (floor: an empty program on cpuwhy's tracepoint, with its pid filter)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o.tracers = strings.Split(*tracers, ",")
	if o.baseline != "" {
		o.tracers = append(o.tracers, "baseline", "baseline-timed")
	}

	tmp, err := os.MkdirTemp("", "syscallcost-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if o.cpuwhy == "" {
		if o.cpuwhy, err = cpuwhybin.Build(tmp, stderr); err != nil {
			return err
		}
	}
	t, err := scenario.LaunchBusypoll(o.cpu, tmp)
	if err != nil {
		return err
	}
	defer t.Stop()

	// Each tracer is readied before the first window, so that one that
	// cannot run costs no round.
	skipped := map[string]string{}
	var mounted bool
	for _, name := range o.tracers {
		if why := prepare(host{}, name, commandOf(o, name, 0)[0], &mounted); why != "" {
			skipped[name] = why
			fmt.Fprintf(stderr, "%s: skipped: %s\n", name, why)
		}
	}
	if mounted {
		fmt.Fprintf(stderr, "mounted tracefs at %s for this run\n", tracefsDir)
		defer func() {
			if err := unmountTracefs(); err != nil {
				fmt.Fprintf(stderr, "tracefs left mounted: %v\n", err)
			}
		}()
	}

	m, err := measureAll(ctx, o, t, o.tracers, skipped, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\n## Syscall tracing cost (%s, target pinned to CPU %d, %d rounds of %v)\n\n", time.Now().Format("2006-01-02"), o.cpu, o.rounds, o.window)
	fmt.Fprintf(stdout, "Untraced: %s recvfrom calls per second (%s per second of the poller on a CPU), medians of %d windows.\n\n",
		human(median(m.untraced, wallOf)), human(median(m.untraced, cpuOf)), len(m.untraced))
	writeTable(stdout, o, o.tracers, m.results, skipped)
	writeCosts(stdout, o, o.tracers, m.costs)

	if o.python == "" {
		return nil
	}
	t.Stop() // the Python target gets the core to itself
	py, err := pytarget.Launch(o.python, pypoll, "pypoll.py", o.cpu, tmp)
	if err != nil {
		return err
	}
	defer py.Stop()
	pm, err := measureAll(ctx, o, py, pyTracers, skipped, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\n### The Python target (%s, pypoll.py)\n\n", o.python)
	fmt.Fprintf(stdout, "Untraced: %s recv calls per second (%s per second of the interpreter on a CPU), medians of %d windows.\n\n",
		human(median(pm.untraced, wallOf)), human(median(pm.untraced, cpuOf)), len(pm.untraced))
	writeTable(stdout, o, pyTracers, pm.results, skipped)
	writeCosts(stdout, o, pyTracers, pm.costs)
	if a, b := pm.results["py-cpuwhy-stacks"], pm.results["py-cpuwhy-stacks-nochain"]; len(a) > 0 && len(b) > 0 {
		fmt.Fprintf(stdout, "\nPython chains read with each sampled stack: the target keeps %.3f of its rate with stacks and no chains (per CPU second, medians)\n",
			median(a, cpuOf)/median(b, cpuOf))
	}
	return nil
}

// measured is what measureAll found.
type measured struct {
	results  map[string][]scenario.Rates
	costs    map[string][]float64 // BPF ns per sys_exit run
	untraced []scenario.Rates
}

// measureAll runs the rounds of names on t, with untraced windows
// between them.
func measureAll(ctx context.Context, o options, t target, names []string, skipped map[string]string, stderr io.Writer) (*measured, error) {
	m := &measured{results: map[string][]scenario.Rates{}, costs: map[string][]float64{}}
	measureUntraced := func() error {
		r, err := t.Measure(ctx, o.window)
		if err != nil {
			return err
		}
		m.untraced = append(m.untraced, r)
		return nil
	}
	if err := measureUntraced(); err != nil {
		return nil, err
	}
	for round := range o.rounds {
		for _, name := range names {
			if skipped[name] != "" {
				continue
			}
			fmt.Fprintf(stderr, "round %d/%d: %s\n", round+1, o.rounds, name)
			before := m.untraced[len(m.untraced)-1]
			r, cost, err := traced(ctx, o, t, name)
			var notStarted *startError
			if errors.As(err, &notStarted) {
				skipped[name] = fmt.Sprintf("round %d: %v", round+1, err)
				fmt.Fprintf(stderr, "%s: skipped: %s\n", name, skipped[name])
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			if err := measureUntraced(); err != nil {
				return nil, err
			}
			after := m.untraced[len(m.untraced)-1]
			if cost > 0 {
				m.costs[name] = append(m.costs[name], cost)
			}
			m.results[name] = append(m.results[name], scenario.Rates{
				Wall: r.Wall / ((before.Wall + after.Wall) / 2),
				CPU:  r.CPU / ((before.CPU + after.CPU) / 2),
			})
		}
	}
	return m, nil
}

// writeCosts prints the BPF tracers' programs' own run time per call.
func writeCosts(w io.Writer, o options, names []string, costs map[string][]float64) {
	if len(costs) == 0 {
		return
	}
	fmt.Fprintf(w, "\nBPF programs' run time per sys_exit run, from the kernel's statistics over a %v window after each rate window (sys_enter's runs included where attached; median, and the rounds):\n\n", o.stats)
	for _, name := range names {
		c := costs[name]
		if len(c) == 0 {
			continue
		}
		v := slices.Clone(c)
		slices.Sort(v)
		var rounds []string
		for _, x := range c {
			rounds = append(rounds, fmt.Sprintf("%.1f", x))
		}
		fmt.Fprintf(w, "- %s: %.1f ns (%s)\n", name, v[len(v)/2], strings.Join(rounds, " "))
	}
}

// writeTable prints a row per tracer: its medians over the rounds it ran,
// and for one skipped, why (with the rounds it ran before, if any).
func writeTable(w io.Writer, o options, names []string, results map[string][]scenario.Rates, skipped map[string]string) {
	// The floor's share is taken per CPU second of the target: on a
	// shared machine the wall rate follows the time others leave it.
	floor := 0.0
	if len(results["floor"]) > 0 {
		floor = median(results["floor"], cpuOf)
	}
	fmt.Fprintln(w, "| tracer | command | rate kept, per wall second (median) | per CPU second (median) | of the floor (per CPU second) | rounds (wall) |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---|")
	for _, name := range names {
		var rounds []string
		for _, v := range results[name] {
			rounds = append(rounds, fmt.Sprintf("%.1f%%", 100*v.Wall))
		}
		wall, cpu, ofFloor := "-", "-", "-"
		if len(results[name]) > 0 {
			m := median(results[name], cpuOf)
			wall, cpu = fmt.Sprintf("%.1f%%", 100*median(results[name], wallOf)), fmt.Sprintf("%.1f%%", 100*m)
			if floor > 0 {
				ofFloor = fmt.Sprintf("%.1f%%", 100*m/floor)
			}
		}
		if why := skipped[name]; why != "" {
			rounds = append(rounds, "skipped: "+why)
		}
		command := "`" + strings.Join(commandOf(o, name, 0), " ") + "`"
		if name == "floor" {
			command = "empty `tp_btf/sys_exit` program: the tgid test alone (`" + floorArg + " PID`)"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", name, command, wall, cpu, ofFloor, strings.Join(rounds, " "))
	}
	if floor > 0 {
		for _, name := range []string{"cpuwhy", "cpuwhy-timed", "baseline", "baseline-timed"} {
			if len(results[name]) > 0 {
				fmt.Fprintf(w, "\n%s: %.1f points below the floor (per CPU second; goal: count-only within 2, timed within 4)", name, 100*(floor-median(results[name], cpuOf)))
			}
		}
		fmt.Fprintln(w)
	}
}

func wallOf(r scenario.Rates) float64 { return r.Wall }
func cpuOf(r scenario.Rates) float64  { return r.CPU }

// commandOf is the command line of a tracer attached to pid.
func commandOf(o options, name string, pid int) []string {
	p := strconv.Itoa(pid)
	if pid == 0 {
		p = "PID"
	}
	long := strconv.Itoa(int((o.settle + o.window + 10*time.Second).Seconds())) + "s"
	switch name {
	case "floor":
		self, _ := os.Executable()
		return []string{self, floorArg, p}
	// --exact: these rows measure what counting every call costs, against
	// the floor; cpuwhy-sampled is the default, which counts a target
	// this fast in slices of the window.
	case "cpuwhy":
		return []string{o.cpuwhy, "syscalls", "--exact", "--time-every", "0", "-d", long, p}
	case "cpuwhy-timed":
		return []string{o.cpuwhy, "syscalls", "--exact", "-d", long, p}
	case "cpuwhy-sampled":
		return []string{o.cpuwhy, "syscalls", "-d", long, p}
	case "baseline":
		return []string{o.baseline, "syscalls", "--time-every", "0", "-d", long, p}
	case "baseline-timed":
		return []string{o.baseline, "syscalls", "-d", long, p}
	case "py-cpuwhy-timed":
		return []string{o.cpuwhy, "syscalls", "--exact", "-d", long, p}
	case "py-cpuwhy-stacks":
		return []string{o.cpuwhy, "syscalls", "--exact", "--stacks", "-d", long, p}
	case "py-cpuwhy-stacks-nochain":
		return []string{"env", "CPUWHY_PYTHON_NO_BPF=1", o.cpuwhy, "syscalls", "--exact", "--stacks", "-d", long, p}
	case "bpftrace":
		return []string{"bpftrace", "-e", "tracepoint:raw_syscalls:sys_exit /pid == " + p + "/ { @[args->id] = count(); }"}
	case "perf-trace":
		return []string{"perf", "trace", "-s", "-p", p}
	case "strace":
		return []string{"strace", "-c", "-f", "-p", p}
	}
	return []string{name}
}

// traced runs one tracer on the target and returns the target's call rate
// while it is attached.
func traced(ctx context.Context, o options, t target, name string) (scenario.Rates, float64, error) {
	argv := commandOf(o, name, t.PID())
	cmd := exec.Command(argv[0], argv[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	since := sinceBoot()
	if err := cmd.Start(); err != nil {
		return scenario.Rates{}, 0, &startError{err: err}
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stopTracer := func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	select {
	case err := <-done:
		return scenario.Rates{}, 0, &startError{err: fmt.Errorf("exited before the window (%v)", err), output: out.Bytes()}
	case <-time.After(o.settle):
	case <-ctx.Done():
		stopTracer()
		return scenario.Rates{}, 0, ctx.Err()
	}
	r, err := t.Measure(ctx, o.window)
	var cost float64
	if err == nil && o.stats > 0 && bpfTracer(name) {
		var c progCost
		if c, err = measureProgCost(ctx, since, o.stats); err == nil {
			cost = c.perCall()
		}
	}
	stopTracer()
	return r, cost, err
}

// bpfTracer says whether the tracer runs BPF programs on the syscall
// tracepoints named as cpuwhy's are (sys_exit, sys_enter; floor_exit).
func bpfTracer(name string) bool {
	switch name {
	case "floor", "cpuwhy", "cpuwhy-timed", "cpuwhy-sampled", "baseline", "baseline-timed", "py-cpuwhy-timed", "py-cpuwhy-stacks", "py-cpuwhy-stacks-nochain":
		return true
	}
	return false
}

func median(rs []scenario.Rates, f func(scenario.Rates) float64) float64 {
	if len(rs) == 0 {
		return 0
	}
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

func human(r float64) string {
	if r >= 1e6 {
		return fmt.Sprintf("%.2fM", r/1e6)
	}
	return fmt.Sprintf("%.0fK", r/1e3)
}
