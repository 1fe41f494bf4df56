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
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/scenario"
)

type options struct {
	window  time.Duration
	settle  time.Duration
	rounds  int
	cpu     int
	cpuwhy  string
	tracers []string
}

func main() {
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
	tracers := fs.String("tracers", "cpuwhy,cpuwhy-timed,bpftrace,perf-trace,strace", "tracers to compare, in order")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o.tracers = strings.Split(*tracers, ",")

	tmp, err := os.MkdirTemp("", "syscallcost-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if o.cpuwhy == "" {
		o.cpuwhy = filepath.Join(tmp, "cpuwhy")
		fmt.Fprintln(stderr, "building cpuwhy")
		build := exec.Command("go", "build", "-o", o.cpuwhy, "./cmd/cpuwhy")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("building cpuwhy: %w\n%s", err, out)
		}
	}
	prog, err := scenario.Compile("busypoll")
	if err != nil {
		return err
	}
	t, err := startTarget(prog, o.cpu, filepath.Join(tmp, "count"))
	if err != nil {
		return err
	}
	defer t.stop()

	results := map[string][]rates{}
	var untraced []rates
	measureUntraced := func() error {
		r, err := t.rate(ctx, o.window)
		if err != nil {
			return err
		}
		untraced = append(untraced, r)
		return nil
	}
	if err := measureUntraced(); err != nil {
		return err
	}
	for round := range o.rounds {
		for _, name := range o.tracers {
			fmt.Fprintf(stderr, "round %d/%d: %s\n", round+1, o.rounds, name)
			before := untraced[len(untraced)-1]
			r, err := traced(ctx, o, t, name)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if err := measureUntraced(); err != nil {
				return err
			}
			after := untraced[len(untraced)-1]
			results[name] = append(results[name], rates{
				wall: r.wall / ((before.wall + after.wall) / 2),
				cpu:  r.cpu / ((before.cpu + after.cpu) / 2),
			})
		}
	}
	fmt.Fprintf(stdout, "\n## Syscall tracing cost (%s, target pinned to CPU %d, %d rounds of %v)\n\n", time.Now().Format("2006-01-02"), o.cpu, o.rounds, o.window)
	fmt.Fprintf(stdout, "Untraced: %s recvfrom calls per second (%s per second of the poller on a CPU), medians of %d windows.\n\n",
		human(median(untraced, wallOf)), human(median(untraced, cpuOf)), len(untraced))
	fmt.Fprintln(stdout, "| tracer | command | rate kept, per wall second (median) | per CPU second (median) | rounds (wall) |")
	fmt.Fprintln(stdout, "|---|---|---:|---:|---|")
	for _, name := range o.tracers {
		var rounds []string
		for _, v := range results[name] {
			rounds = append(rounds, fmt.Sprintf("%.1f%%", 100*v.wall))
		}
		fmt.Fprintf(stdout, "| %s | `%s` | %.1f%% | %.1f%% | %s |\n", name, strings.Join(commandOf(o, name, 0), " "),
			100*median(results[name], wallOf), 100*median(results[name], cpuOf), strings.Join(rounds, " "))
	}
	return nil
}

func wallOf(r rates) float64 { return r.wall }
func cpuOf(r rates) float64  { return r.cpu }

// commandOf is the command line of a tracer attached to pid.
func commandOf(o options, name string, pid int) []string {
	p := strconv.Itoa(pid)
	if pid == 0 {
		p = "PID"
	}
	long := strconv.Itoa(int((o.settle + o.window + 10*time.Second).Seconds())) + "s"
	switch name {
	case "cpuwhy":
		return []string{o.cpuwhy, "syscalls", "--time-every", "0", "-d", long, p}
	case "cpuwhy-timed":
		return []string{o.cpuwhy, "syscalls", "-d", long, p}
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
func traced(ctx context.Context, o options, t *target, name string) (rates, error) {
	argv := commandOf(o, name, t.cmd.Process.Pid)
	cmd := exec.Command(argv[0], argv[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return rates{}, err
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
		return rates{}, fmt.Errorf("exited before the window: %v\n%s", err, out.Bytes())
	case <-time.After(o.settle):
	case <-ctx.Done():
		stopTracer()
		return rates{}, ctx.Err()
	}
	r, err := t.rate(ctx, o.window)
	stopTracer()
	return r, err
}

// target is the busypoll scenario.
type target struct {
	cmd       *exec.Cmd
	countFile string
	poller    int // TID of NatThreadMain
}

func startTarget(prog scenario.Program, cpu int, countFile string) (*target, error) {
	cmd := exec.Command("taskset", "-c", strconv.Itoa(cpu), prog.Path)
	cmd.Env = append(os.Environ(), "SCENARIO_COUNT_FILE="+countFile)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	t := &target{cmd: cmd, countFile: countFile}
	buf := make([]byte, 16)
	if n, err := stdout.Read(buf); err != nil || !strings.HasPrefix(string(buf[:n]), "ready") {
		t.stop()
		return nil, fmt.Errorf("busypoll did not get ready: %q %v", buf[:n], err)
	}
	return t, nil
}

func (t *target) stop() {
	_ = t.cmd.Process.Kill()
	_ = t.cmd.Wait()
}

// count asks the target for its recvfrom count.
func (t *target) count() (uint64, error) {
	_ = os.Remove(t.countFile)
	if err := t.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		return 0, err
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		data, err := os.ReadFile(t.countFile)
		if err == nil {
			v, perr := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(string(data), "calls=")), 10, 64)
			if perr == nil {
				return v, nil
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	return 0, errors.New("no count from the target")
}

// rate measures the target's calls over window, per wall second and per
// second of its poller's time on a CPU. The first is what a user sees; the
// second leaves out the time a shared machine gives to other work, which
// is no cost of the tracer, but it flatters tracers that stop the target
// (strace, perf trace), whose cost is mostly time the target is not on a
// CPU at all.
func (t *target) rate(ctx context.Context, window time.Duration) (rates, error) {
	c0, err := t.count()
	if err != nil {
		return rates{}, err
	}
	r0, err := t.runtime()
	if err != nil {
		return rates{}, err
	}
	start := time.Now()
	select {
	case <-time.After(window):
	case <-ctx.Done():
		return rates{}, ctx.Err()
	}
	c1, err := t.count()
	if err != nil {
		return rates{}, err
	}
	r1, err := t.runtime()
	if err != nil {
		return rates{}, err
	}
	calls := float64(c1 - c0)
	return rates{wall: calls / time.Since(start).Seconds(), cpu: calls / (r1 - r0).Seconds()}, nil
}

// rates are a call rate per wall second and per second of the poller on a
// CPU.
type rates struct{ wall, cpu float64 }

// runtime is the poller thread's time on a CPU so far (schedstat).
func (t *target) runtime() (time.Duration, error) {
	if t.poller == 0 {
		comms, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/comm", t.cmd.Process.Pid))
		for _, c := range comms {
			if b, err := os.ReadFile(c); err == nil && strings.TrimSpace(string(b)) == "NatThreadMain" {
				t.poller, _ = strconv.Atoi(filepath.Base(filepath.Dir(c)))
			}
		}
		if t.poller == 0 {
			return 0, errors.New("busypoll has no NatThreadMain thread")
		}
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/schedstat", t.cmd.Process.Pid, t.poller))
	if err != nil {
		return 0, err
	}
	ns, err := strconv.ParseInt(strings.Fields(string(data))[0], 10, 64)
	return time.Duration(ns), err
}

func median(rs []rates, f func(rates) float64) float64 {
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
