// Command diagnosecost measures the one-command diagnosis, `cpuwhy PID`,
// on the seed's case: the time from start to verdict against the window
// (goal: at most the window + 1 s), cpuwhy's own CPU over the run (as its
// --json reports it and as the kernel accounts the child), and the
// target's rate kept while it is diagnosed, against untraced windows
// measured on both sides in the same run.
//
// The target is the busypoll scenario (NatThreadMain spinning on
// recvfrom), pinned to one core. With -busiest, cpuwhy is run without a
// target too, so the time to pick the busiest process is included. With
// -onecore, cpuwhy is also run pinned to the target's core (taskset), as
// on the seed's one-core VPS: whatever cpuwhy uses, the target loses.
// It is run there twice, by default and with --exact: by default the
// syscalls of a target this fast are counted in slices of the window
// (internal/syscalls/counting.go), with --exact every one is, and the two
// rows side by side show what that costs the target.
// Besides its CPU over the whole run, cpuwhy's CPU inside the window is
// taken (its threads' schedstat from 1 s after its start to the window's
// length after it, when start-up is over and the window not yet ended).
//
// Usage: go run ./bench/diagnosecost [-window 3s] [-rounds 5] [-busiest] [-onecore]
package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/cpuwhy/cpuwhy/bench/internal/cpuwhybin"
	"github.com/cpuwhy/cpuwhy/internal/diagnose"
	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/test/scenario"
)

type options struct {
	window  time.Duration
	rounds  int
	cpu     int
	busiest bool
	onecore bool
	cpuwhy  string
	tmp     string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "diagnosecost: %v\n", err)
		os.Exit(1)
	}
}

// round is one diagnosis as measured from outside and as reported.
type round struct {
	wall, childCPU, kept float64 // seconds, seconds, share of the untraced rate
	// keptCPU is the rate per second of the poller's CPU time, as a
	// share of the untraced one: what the tracing costs it in its own
	// context, which other tasks sharing its core do not move (they move
	// kept, per wall second, by tens of points on a loaded machine).
	keptCPU  float64
	inWindow float64 // cpuwhy's CPU inside the window, share of a core
	// keptWindow is the target's rate over the same stretch inside the
	// window, as a share of the untraced one: what it keeps while cpuwhy
	// watches, past cpuwhy's start-up and before its report.
	keptWindow float64
	report     diagnose.Report
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("diagnosecost", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&o.window, "window", diagnose.DefaultDuration, "diagnosis window (-d)")
	fs.IntVar(&o.rounds, "rounds", 5, "rounds")
	fs.IntVar(&o.cpu, "cpu", 1, "core the target is pinned to")
	fs.BoolVar(&o.busiest, "busiest", true, "also run cpuwhy with no target (the busiest process)")
	fs.BoolVar(&o.onecore, "onecore", true, "also run cpuwhy pinned to the target's core")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	if o.tmp, err = os.MkdirTemp("", "diagnosecost-"); err != nil {
		return err
	}
	defer os.RemoveAll(o.tmp)
	if o.cpuwhy, err = cpuwhybin.Build(o.tmp, stderr); err != nil {
		return err
	}
	t, err := scenario.LaunchBusypoll(o.cpu, o.tmp)
	if err != nil {
		return err
	}
	defer t.Stop()

	modes := []string{"PID"}
	if o.busiest {
		modes = append(modes, "busiest")
	}
	if o.onecore {
		modes = append(modes, "onecore", "onecore-exact")
	}
	results := map[string][]round{}
	untraced, err := t.Measure(ctx, o.window)
	if err != nil {
		return err
	}
	for i := range o.rounds {
		for _, mode := range modes {
			fmt.Fprintf(stderr, "round %d/%d: %s\n", i+1, o.rounds, mode)
			argv := []string{o.cpuwhy, "-d", o.window.String(), "--json"}
			if mode != "busiest" {
				argv = append(argv, strconv.Itoa(t.PID()))
			}
			if mode == "onecore-exact" {
				argv = append(argv, "--exact")
			}
			if mode == "onecore" || mode == "onecore-exact" {
				argv = append([]string{"taskset", "-c", strconv.Itoa(o.cpu)}, argv...)
			}
			r, err := diagnoseOnce(ctx, argv, t, o.window)
			if err != nil {
				return err
			}
			if r.report.Target.PID != t.PID() {
				return fmt.Errorf("%s: diagnosed %+v: want PID %d", mode, r.report.Target, t.PID())
			}
			// On a loaded machine the pinned target may get too little
			// of its core to be judged busy: the round counts, and the
			// table says in how many the verdict was busy_poll.
			if len(r.report.Verdicts) == 0 || r.report.Verdicts[0].Pattern != "busy_poll" {
				fmt.Fprintf(stderr, "%s: the target had %.1f%% of a core and was not judged busy_poll\n", mode, r.report.Target.CPU)
			}
			after, err := t.Measure(ctx, o.window)
			if err != nil {
				return err
			}
			r.kept /= (untraced.Wall + after.Wall) / 2
			r.keptWindow /= (untraced.Wall + after.Wall) / 2
			r.keptCPU /= (untraced.CPU + after.CPU) / 2
			untraced = after
			results[mode] = append(results[mode], r)
		}
	}

	fmt.Fprintf(stdout, "\n## One-command diagnosis (%s, busypoll pinned to CPU %d, window %v, %d rounds, medians)\n\n",
		time.Now().Format("2006-01-02"), o.cpu, o.window, o.rounds)
	fmt.Fprintln(stdout, "| command | start to verdict | over the window | ratio to window + 1 s | slowest round | cpuwhy CPU (kernel's account) | cpuwhy CPU (its --json) | cpuwhy CPU inside the window | target's rate kept | per CPU second | inside the window | busy_poll found | syscalls counted |")
	fmt.Fprintln(stdout, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, mode := range modes {
		rs := results[mode]
		cmd := "cpuwhy -d " + o.window.String() + " --json PID"
		switch mode {
		case "busiest":
			cmd = "cpuwhy -d " + o.window.String() + " --json (busiest)"
		case "onecore":
			cmd = "taskset -c " + strconv.Itoa(o.cpu) + " cpuwhy -d " + o.window.String() + " --json PID"
		case "onecore-exact":
			cmd = "taskset -c " + strconv.Itoa(o.cpu) + " cpuwhy -d " + o.window.String() + " --json --exact PID"
		}
		wall := median(rs, func(r round) float64 { return r.wall })
		slowest := slices.MaxFunc(rs, func(a, b round) int { return cmp.Compare(a.wall, b.wall) }).wall
		found := 0
		for _, r := range rs {
			if len(r.report.Verdicts) > 0 && r.report.Verdicts[0].Pattern == "busy_poll" {
				found++
			}
		}
		fmt.Fprintf(stdout, "| `%s` | %.2f s | +%.2f s | %.2f | %.2f s | %.2f s (%.1f%% of a core) | %.2f s | %.1f%% of a core | %.1f%% | %.1f%% | %.1f%% | %d of %d | %s |\n", cmd,
			wall, wall-o.window.Seconds(), wall/(o.window.Seconds()+1), slowest,
			median(rs, func(r round) float64 { return r.childCPU }), 100*median(rs, func(r round) float64 { return r.childCPU / r.wall }),
			median(rs, func(r round) float64 { return r.report.Cpuwhy.CPU }),
			100*median(rs, func(r round) float64 { return r.inWindow }),
			100*median(rs, func(r round) float64 { return r.kept }), 100*median(rs, func(r round) float64 { return r.keptCPU }),
			100*median(rs, func(r round) float64 { return r.keptWindow }), found, len(rs), counting(rs))
	}
	fmt.Fprintln(stdout, "\nGoal: start to verdict <= window + 1 s (ratio <= 1).")
	for _, mode := range []string{"onecore", "onecore-exact"} {
		rs := results[mode]
		if len(rs) == 0 {
			continue
		}
		fmt.Fprintf(stdout, "One core, %s (goal: cpuwhy <= 5%% of the core inside the window, the target keeps >= 90%% of its rate): %.1f%%, %.1f%% over cpuwhy's run, %.1f%% inside the window\n", mode,
			100*median(rs, func(r round) float64 { return r.inWindow }), 100*median(rs, func(r round) float64 { return r.kept }),
			100*median(rs, func(r round) float64 { return r.keptWindow }))
		for _, r := range rs {
			fmt.Fprintf(stdout, "  round: cpuwhy %.1f%% inside the window, target kept %.1f%% over the run (%.1f%% per CPU second), %.1f%% inside the window\n",
				100*r.inWindow, 100*r.kept, 100*r.keptCPU, 100*r.keptWindow)
		}
	}
	return nil
}

func diagnoseOnce(ctx context.Context, argv []string, t *scenario.Busypoll, window time.Duration) (round, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	c0, err := t.Count()
	if err != nil {
		return round{}, err
	}
	run0, err := t.Runtime()
	if err != nil {
		return round{}, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return round{}, fmt.Errorf("%v: %w", argv, err)
	}
	inWindow, windowRate := insideWindow(ctx, cmd.Process.Pid, t, start, window)
	if err := cmd.Wait(); err != nil {
		return round{}, fmt.Errorf("%v: %w\n%s", argv, err, errOut.Bytes())
	}
	wall := time.Since(start)
	c1, err := t.Count()
	if err != nil {
		return round{}, err
	}
	run1, err := t.Runtime()
	if err != nil {
		return round{}, err
	}
	r := round{wall: wall.Seconds(), kept: float64(c1-c0) / wall.Seconds(), inWindow: inWindow, keptWindow: windowRate}
	if run1 > run0 {
		r.keptCPU = float64(c1-c0) / (run1 - run0).Seconds()
	}
	ps := cmd.ProcessState
	r.childCPU = (ps.UserTime() + ps.SystemTime()).Seconds()
	if err := json.Unmarshal(out.Bytes(), &r.report); err != nil {
		return round{}, fmt.Errorf("decoding %q: %w", out.Bytes(), err)
	}
	return r, nil
}

// insideWindow returns cpuwhy's CPU, a share of one core, and the
// target's rate of calls, from 1 s after cpuwhy's start to the window's
// length after it: inside the window, past the start-up (finding the
// target, loading BPF, opening events, which take well under a second)
// and before the window ends. 0s when the window is too short to leave
// such a stretch or the target's count cannot be read.
func insideWindow(ctx context.Context, pid int, t *scenario.Busypoll, start time.Time, window time.Duration) (cpu, rate float64) {
	from, to := start.Add(time.Second), start.Add(window)
	if !to.After(from) {
		return 0, 0
	}
	sleepUntil := func(t time.Time) bool {
		select {
		case <-time.After(time.Until(t)):
			return true
		case <-ctx.Done():
			return false
		}
	}
	if !sleepUntil(from) {
		return 0, 0
	}
	c0, cerr := t.Count()
	t0, a := time.Now(), onCPU(pid)
	if !sleepUntil(to) {
		return 0, 0
	}
	c1, cerr1 := t.Count()
	took := time.Since(t0).Seconds()
	cpu = (onCPU(pid) - a).Seconds() / took
	if cerr == nil && cerr1 == nil {
		rate = float64(c1-c0) / took
	}
	return cpu, rate
}

// onCPU is the time process pid's live threads have run.
func onCPU(pid int) time.Duration {
	var sum time.Duration
	stats, _ := proc.FS{}.ThreadSchedstats(pid)
	for _, st := range stats {
		sum += st.OnCPU
	}
	return sum
}

func median(rs []round, f func(round) float64) float64 {
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

// counting says how the rounds counted syscalls: every call, or in slices
// of the window (the median share counted).
func counting(rs []round) string {
	var shares []float64
	for _, r := range rs {
		if c := r.report.Cpuwhy.Counting; c != nil && c.Sampled {
			shares = append(shares, c.Share())
		}
	}
	if len(shares) == 0 {
		return "every call"
	}
	slices.Sort(shares)
	return fmt.Sprintf("%.1f%% of the window (%d of %d rounds sliced)", 100*shares[len(shares)/2], len(shares), len(rs))
}
