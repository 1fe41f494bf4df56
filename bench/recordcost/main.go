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
// recording; and, apart, its CPU in the middle of the window (schedstat
// of its threads), the steady cost of sampling alone. The target's rate
// is compared with untraced windows on both sides.
//
// A second target, pyloop.py under the newest CPython of the machine
// (-python), is recorded in turn by cpuwhy, whose program in the kernel
// reads each sample's Python frame chain as it is taken (cpuwhy-python);
// by cpuwhy with that turned off (CPUWHY_PYTHON_NO_BPF=1), reading each
// chain from the interpreter's memory with the sampler woken at every
// sample (cpuwhy-python-live); and by perf (perf-python, which names no
// Python frame: the floor).
//
// With -threads N the first target is instead the threads scenario with
// N busy threads (each bursting a tenth of a core), pinned to the same
// core: the recorder follows N threads, and only its CPU is compared
// (that scenario counts no calls).
//
// Usage: go run ./bench/recordcost [-window 5s] [-rounds 3] [-freq 99] [-threads 50] [-python PATH]
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
	"github.com/cpuwhy/cpuwhy/bench/internal/pytarget"
	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/test/scenario"
)

type options struct {
	window  time.Duration
	rounds  int
	freq    int
	cpu     int
	threads int
	cpuwhy  string
	tmp     string
	python  string
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
	fs.StringVar(&o.python, "python", pytarget.Find(), "CPython for the Python target; \"\": none")
	fs.IntVar(&o.threads, "threads", 0, "instead of busypoll, the threads scenario with this many busy threads")
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
	var t target
	if o.threads > 0 {
		t, err = launchThreads(o.cpu, o.threads)
	} else {
		t, err = launchBusypoll(o.cpu, o.tmp)
	}
	if err != nil {
		return err
	}
	defer t.Stop()

	type result struct{ kept, cpu, sampling []float64 }
	results := map[string]*result{"cpuwhy": {}, "perf": {}, "cpuwhy-python": {}, "cpuwhy-python-live": {}, "perf-python": {}}
	order := []string{"cpuwhy", "perf"}
	// rounds records tg with each recorder of names in turn, each
	// recording between two untraced windows.
	rounds := func(tg target, names []string) error {
		untraced, err := tg.Measure(ctx, o.window)
		if err != nil {
			return err
		}
		for round := range o.rounds {
			for _, name := range names {
				fmt.Fprintf(stderr, "round %d/%d: %s\n", round+1, o.rounds, name)
				kept, cpu, sampling, err := recordOnce(ctx, o, tg, name)
				if err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				after, err := tg.Measure(ctx, o.window)
				if err != nil {
					return err
				}
				if base := (untraced.Wall + after.Wall) / 2; base > 0 {
					results[name].kept = append(results[name].kept, kept/base)
				}
				results[name].cpu = append(results[name].cpu, cpu)
				results[name].sampling = append(results[name].sampling, sampling)
				untraced = after
			}
		}
		return nil
	}
	if err := rounds(t, order); err != nil {
		return err
	}
	t.Stop() // the Python target gets its core to itself
	what := "busypoll"
	if o.threads > 0 {
		what = fmt.Sprintf("threads scenario with %d busy threads", o.threads)
	}
	if o.python != "" {
		py, err := pytarget.Launch(o.python, pyloop, "pyloop.py", o.cpu, o.tmp)
		if err != nil {
			return err
		}
		defer py.Stop()
		pyNames := []string{"cpuwhy-python", "cpuwhy-python-live", "perf-python"}
		order = append(order, pyNames...)
		if err := rounds(py, pyNames); err != nil {
			return err
		}
		what += " then pyloop.py"
	}
	fmt.Fprintf(stdout, "\n## Recording cost (%s, %s, pinned to CPU %d, %d Hz, %d rounds of %v)\n\n", time.Now().Format("2006-01-02"), what, o.cpu, o.freq, o.rounds, o.window)
	fmt.Fprintln(stdout, "| recorder | command | target's rate kept (median) | recorder CPU while sampling, % of a core (median) | whole command, % of a core over the window (median) |")
	fmt.Fprintln(stdout, "|---|---|---:|---:|---:|")
	for _, name := range order {
		r := results[name]
		kept := "—"
		if o.threads == 0 {
			kept = fmt.Sprintf("%.1f%%", 100*median(r.kept))
		}
		fmt.Fprintf(stdout, "| %s | `%s` | %s | %.2f%% | %.2f%% |\n", name, strings.Join(command(o, name, 0), " "),
			kept, 100*median(r.sampling), 100*median(r.cpu))
	}
	cw, pw := median(results["cpuwhy"].cpu), median(results["perf"].cpu)
	cs, ps := median(results["cpuwhy"].sampling), median(results["perf"].sampling)
	if pw > 0 && ps > 0 {
		fmt.Fprintf(stdout, "\ncpuwhy/perf CPU ratio: while sampling %.2f, whole command %.2f\n", cs/ps, cw/pw)
	}
	fmt.Fprintf(stdout, "Goal: while sampling, cpuwhy/perf <= 1.0: %.2f; whole command cpuwhy/perf < 1.0: %.2f\n", cs/ps, cw/pw)
	for _, name := range order {
		fmt.Fprintf(stdout, "%s rounds, while sampling:", name)
		for _, v := range results[name].sampling {
			fmt.Fprintf(stdout, " %.2f%%", 100*v)
		}
		fmt.Fprintln(stdout)
	}
	if py := results["cpuwhy-python"]; len(py.sampling) > 0 {
		live, perf := results["cpuwhy-python-live"], results["perf-python"]
		fmt.Fprintf(stdout, "Python target (%s, pyloop.py): cpuwhy %.2f%% while sampling, %.2f / %.2f of the native target's (sampling, whole command)\n",
			o.python, 100*median(py.sampling), median(py.sampling)/cs, median(py.cpu)/cw)
		fmt.Fprintf(stdout, "Python target, chains read in the kernel / read live with a wakeup per sample: %.2f while sampling, %.2f whole command; / perf: %.2f, %.2f\n",
			median(py.sampling)/median(live.sampling), median(py.cpu)/median(live.cpu), median(py.sampling)/median(perf.sampling), median(py.cpu)/median(perf.cpu))
	}
	return nil
}

func command(o options, name string, pid int) []string {
	p, secs := "PID", strconv.Itoa(int(o.window.Seconds()+0.5))+"s"
	if pid != 0 {
		p = strconv.Itoa(pid)
	}
	switch name {
	case "cpuwhy", "cpuwhy-python", "cpuwhy-python-live":
		return []string{"cpuwhy", "record", "-F", strconv.Itoa(o.freq), "-d", secs, "-o", "out.pb.gz", p}
	case "perf", "perf-python":
		return []string{"perf", "record", "-F", strconv.Itoa(o.freq), "--call-graph", "dwarf", "-o", "perf.data", "-p", p, "--", "sleep", secs}
	}
	return nil
}

// recordOnce runs one recorder over the target and returns the target's
// call rate meanwhile, the recorder's CPU as a share of one core over the
// whole command, and over the middle of the window alone.
func recordOnce(ctx context.Context, o options, t target, name string) (kept, whole, sampling float64, err error) {
	argv := command(o, name, t.PID())
	if argv[0] == "cpuwhy" {
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
	if name == "cpuwhy-python-live" {
		cmd.Env = append(os.Environ(), "CPUWHY_PYTHON_NO_BPF=1")
	}
	c0, err := t.Count()
	if err != nil {
		return 0, 0, 0, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, 0, fmt.Errorf("%v: %w", argv, err)
	}
	sampling, sampleErr := samplingCPU(ctx, cmd.Process.Pid, o.window)
	if err := cmd.Wait(); err != nil {
		return 0, 0, 0, fmt.Errorf("%v: %w\n%s", argv, err, out.Bytes())
	}
	if sampleErr != nil {
		return 0, 0, 0, sampleErr
	}
	elapsed := time.Since(start)
	c1, err := t.Count()
	if err != nil {
		return 0, 0, 0, err
	}
	ps := cmd.ProcessState
	whole = (ps.UserTime() + ps.SystemTime()).Seconds() / o.window.Seconds()
	return float64(c1-c0) / elapsed.Seconds(), whole, sampling, nil
}

// samplingCPU measures the recorder's CPU, a share of one core, from 1 s
// into the window to 0.5 s before its end: the steady cost of sampling,
// without start-up (loading, opening events) or the work after the
// window (unwinding, naming, writing). It sums the schedstat of every
// thread of the process, in nanoseconds.
func samplingCPU(ctx context.Context, pid int, window time.Duration) (float64, error) {
	from, to := time.Second, window-window/10
	if to <= from {
		return 0, fmt.Errorf("window %v too short to measure the sampling alone", window)
	}
	sleep := func(d time.Duration) error {
		select {
		case <-time.After(d):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := sleep(from); err != nil {
		return 0, err
	}
	t0, a := time.Now(), onCPU(pid)
	if err := sleep(to - from); err != nil {
		return 0, err
	}
	b := onCPU(pid)
	return (b - a).Seconds() / time.Since(t0).Seconds(), nil
}

// onCPU is the time process pid's live threads have run.
func onCPU(pid int) time.Duration {
	var sum time.Duration
	stats, _ := proc.FS{}.ThreadSchedstats(pid) // none: the recorder ended
	for _, st := range stats {
		sum += st.OnCPU
	}
	return sum
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// target is what is recorded: busypoll, whose calls are counted, or the
// threads scenario, whose are not (Count is 0).
type target interface {
	PID() int
	Count() (uint64, error)
	Measure(ctx context.Context, window time.Duration) (scenario.Rates, error)
	Stop()
}

func launchBusypoll(cpu int, dir string) (target, error) { return scenario.LaunchBusypoll(cpu, dir) }

// threadsTarget is the threads scenario with n busy threads on one core.
type threadsTarget struct{ cmd *exec.Cmd }

func launchThreads(cpu, n int) (target, error) {
	prog, err := scenario.Compile("threads")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("taskset", "-c", strconv.Itoa(cpu), prog.Path, strconv.Itoa(n), strconv.Itoa(n))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	t := &threadsTarget{cmd}
	buf := make([]byte, 16)
	if k, err := out.Read(buf); err != nil || !strings.HasPrefix(string(buf[:k]), "ready") {
		t.Stop()
		return nil, fmt.Errorf("threads did not get ready: %q %v", buf[:k], err)
	}
	return t, nil
}

func (t *threadsTarget) PID() int               { return t.cmd.Process.Pid }
func (t *threadsTarget) Count() (uint64, error) { return 0, nil }
func (t *threadsTarget) Stop()                  { _ = t.cmd.Process.Kill(); _ = t.cmd.Wait() }

// Measure only waits: the threads scenario counts nothing.
func (t *threadsTarget) Measure(ctx context.Context, window time.Duration) (scenario.Rates, error) {
	select {
	case <-time.After(window):
		return scenario.Rates{}, nil
	case <-ctx.Done():
		return scenario.Rates{}, ctx.Err()
	}
}
