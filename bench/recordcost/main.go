// Command recordcost measures what `cpuwhy record` costs, side by side
// with `perf record --call-graph dwarf` in one run: the CPU the recorder
// itself uses while sampling one hot thread, and the slowdown of the
// target, whose own count of calls is the measure.
//
// The target is the busypoll scenario (one thread spinning on recvfrom),
// pinned to one core. Each recorder samples it for a window at the same
// frequency; the recorder's CPU is its process's user+system time (from
// the kernel's accounting of the child) over the window, so its start-up
// and the writing of its output are included: the whole cost of one
// recording. The target's rate is compared with untraced windows on both
// sides.
//
// Usage: go run ./bench/recordcost [-window 5s] [-rounds 3] [-freq 99]
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cpuwhy/cpuwhy/bench/internal/cpuwhybin"
	"github.com/cpuwhy/cpuwhy/internal/scenario"
)

type options struct {
	window time.Duration
	rounds int
	freq   int
	cpu    int
	cpuwhy string
	tmp    string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "recordcost: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("recordcost", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&o.window, "window", 5*time.Second, "recording window")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds")
	fs.IntVar(&o.freq, "freq", 99, "sampling frequency")
	fs.IntVar(&o.cpu, "cpu", 1, "core the target is pinned to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	if o.tmp, err = os.MkdirTemp("", "recordcost-"); err != nil {
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

	type result struct{ kept, cpu []float64 }
	results := map[string]*result{"cpuwhy": {}, "perf": {}}
	order := []string{"cpuwhy", "perf"}
	untraced, err := t.Measure(ctx, o.window)
	if err != nil {
		return err
	}
	for round := range o.rounds {
		for _, name := range order {
			fmt.Fprintf(stderr, "round %d/%d: %s\n", round+1, o.rounds, name)
			kept, cpu, err := recordOnce(ctx, o, t, name)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			after, err := t.Measure(ctx, o.window)
			if err != nil {
				return err
			}
			results[name].kept = append(results[name].kept, kept/((untraced.Wall+after.Wall)/2))
			results[name].cpu = append(results[name].cpu, cpu)
			untraced = after
		}
	}
	fmt.Fprintf(stdout, "\n## Recording cost (%s, busypoll pinned to CPU %d, %d Hz, %d rounds of %v)\n\n", time.Now().Format("2006-01-02"), o.cpu, o.freq, o.rounds, o.window)
	fmt.Fprintln(stdout, "| recorder | command | target's rate kept (median) | recorder CPU, % of a core (median) |")
	fmt.Fprintln(stdout, "|---|---|---:|---:|")
	for _, name := range order {
		r := results[name]
		fmt.Fprintf(stdout, "| %s | `%s` | %.1f%% | %.2f%% |\n", name, strings.Join(command(o, name, 0), " "), 100*median(r.kept), 100*median(r.cpu))
	}
	c, p := median(results["cpuwhy"].cpu), median(results["perf"].cpu)
	if p > 0 {
		fmt.Fprintf(stdout, "\ncpuwhy/perf CPU ratio: %.2f\n", c/p)
	}
	return nil
}

func command(o options, name string, pid int) []string {
	p, secs := "PID", strconv.Itoa(int(o.window.Seconds()+0.5))+"s"
	if pid != 0 {
		p = strconv.Itoa(pid)
	}
	switch name {
	case "cpuwhy":
		return []string{"cpuwhy", "record", "-F", strconv.Itoa(o.freq), "-d", secs, "-o", "out.pb.gz", p}
	case "perf":
		return []string{"perf", "record", "-F", strconv.Itoa(o.freq), "--call-graph", "dwarf", "-o", "perf.data", "-p", p, "--", "sleep", secs}
	}
	return nil
}

// recordOnce runs one recorder over the target and returns the target's
// call rate meanwhile and the recorder's CPU as a share of one core.
func recordOnce(ctx context.Context, o options, t *scenario.Busypoll, name string) (float64, float64, error) {
	argv := command(o, name, t.PID())
	if name == "cpuwhy" {
		argv[0] = o.cpuwhy
	}
	for i, a := range argv {
		if a == "out.pb.gz" || a == "perf.data" {
			argv[i] = filepath.Join(o.tmp, a)
		}
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	c0, err := t.Count()
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, 0, fmt.Errorf("%v: %w\n%s", argv, err, out.Bytes())
	}
	elapsed := time.Since(start)
	c1, err := t.Count()
	if err != nil {
		return 0, 0, err
	}
	ps := cmd.ProcessState
	cpu := (ps.UserTime() + ps.SystemTime()).Seconds() / o.window.Seconds()
	return float64(c1-c0) / elapsed.Seconds(), cpu, nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
