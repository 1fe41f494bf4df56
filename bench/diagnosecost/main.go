// Command diagnosecost measures the one-command diagnosis, `cpuwhy PID`,
// on the seed's case: the time from start to verdict against the window
// (goal: at most the window + 1 s), cpuwhy's own CPU over the run (as its
// --json reports it and as the kernel accounts the child), and the
// target's rate kept while it is diagnosed, against untraced windows
// measured on both sides in the same run.
//
// The target is the busypoll scenario (NatThreadMain spinning on
// recvfrom), pinned to one core. With -busiest, cpuwhy is run without a
// target too, so the time to pick the busiest process is included.
//
// Usage: go run ./bench/diagnosecost [-window 3s] [-rounds 5] [-busiest]
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
	"github.com/cpuwhy/cpuwhy/test/scenario"
)

type options struct {
	window  time.Duration
	rounds  int
	cpu     int
	busiest bool
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
	report               diagnose.Report
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("diagnosecost", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&o.window, "window", diagnose.DefaultDuration, "diagnosis window (-d)")
	fs.IntVar(&o.rounds, "rounds", 5, "rounds")
	fs.IntVar(&o.cpu, "cpu", 1, "core the target is pinned to")
	fs.BoolVar(&o.busiest, "busiest", true, "also run cpuwhy with no target (the busiest process)")
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
	results := map[string][]round{}
	untraced, err := t.Measure(ctx, o.window)
	if err != nil {
		return err
	}
	for i := range o.rounds {
		for _, mode := range modes {
			fmt.Fprintf(stderr, "round %d/%d: %s\n", i+1, o.rounds, mode)
			argv := []string{o.cpuwhy, "-d", o.window.String(), "--json"}
			if mode == "PID" {
				argv = append(argv, strconv.Itoa(t.PID()))
			}
			r, err := diagnoseOnce(ctx, argv, t)
			if err != nil {
				return err
			}
			if r.report.Target.PID != t.PID() || len(r.report.Verdicts) == 0 || r.report.Verdicts[0].Pattern != "busy_poll" {
				return fmt.Errorf("%s: diagnosed %+v: want busy_poll of PID %d", mode, r.report.Target, t.PID())
			}
			after, err := t.Measure(ctx, o.window)
			if err != nil {
				return err
			}
			r.kept /= (untraced.Wall + after.Wall) / 2
			untraced = after
			results[mode] = append(results[mode], r)
		}
	}

	fmt.Fprintf(stdout, "\n## One-command diagnosis (%s, busypoll pinned to CPU %d, window %v, %d rounds, medians)\n\n",
		time.Now().Format("2006-01-02"), o.cpu, o.window, o.rounds)
	fmt.Fprintln(stdout, "| command | start to verdict | over the window | ratio to window + 1 s | slowest round | cpuwhy CPU (kernel's account) | cpuwhy CPU (its --json) | target's rate kept |")
	fmt.Fprintln(stdout, "|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, mode := range modes {
		rs := results[mode]
		cmd := "cpuwhy -d " + o.window.String() + " --json PID"
		if mode == "busiest" {
			cmd = "cpuwhy -d " + o.window.String() + " --json (busiest)"
		}
		wall := median(rs, func(r round) float64 { return r.wall })
		slowest := slices.MaxFunc(rs, func(a, b round) int { return cmp.Compare(a.wall, b.wall) }).wall
		fmt.Fprintf(stdout, "| `%s` | %.2f s | +%.2f s | %.2f | %.2f s | %.2f s (%.1f%% of a core) | %.2f s | %.1f%% |\n", cmd,
			wall, wall-o.window.Seconds(), wall/(o.window.Seconds()+1), slowest,
			median(rs, func(r round) float64 { return r.childCPU }), 100*median(rs, func(r round) float64 { return r.childCPU / r.wall }),
			median(rs, func(r round) float64 { return r.report.Cpuwhy.CPU }),
			100*median(rs, func(r round) float64 { return r.kept }))
	}
	fmt.Fprintln(stdout, "\nGoal: start to verdict <= window + 1 s (ratio <= 1).")
	return nil
}

func diagnoseOnce(ctx context.Context, argv []string, t *scenario.Busypoll) (round, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	c0, err := t.Count()
	if err != nil {
		return round{}, err
	}
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return round{}, fmt.Errorf("%v: %w\n%s", argv, err, errOut.Bytes())
	}
	wall := time.Since(start)
	c1, err := t.Count()
	if err != nil {
		return round{}, err
	}
	r := round{wall: wall.Seconds(), kept: float64(c1-c0) / wall.Seconds()}
	ps := cmd.ProcessState
	r.childCPU = (ps.UserTime() + ps.SystemTime()).Seconds()
	if err := json.Unmarshal(out.Bytes(), &r.report); err != nil {
		return round{}, fmt.Errorf("decoding %q: %w", out.Bytes(), err)
	}
	return r, nil
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
