// Command agentcost measures what one diagnosis costs a long-lived
// process (cpuwhy watch and agent), which diagnoses again and again: the
// CPU of a diagnosis (its cpu_s, RUSAGE_SELF over the diagnosis, nothing
// else running in this process) and its wall time beyond the window,
// with what the diagnoses share (stack.Shared, ebpf.NewKept) taken away
// one part at a time, in one process and one run, the ways alternating
// round by round, so that the machine's load weighs on each alike:
//
//   - alone: nothing shared, as one `cpuwhy PID` run after another;
//   - kept, own tables: the syscall programs kept loaded, the kernel's
//     symbols and the objects' names shared, each diagnosis reading the
//     objects' unwinding tables again (main before issue 14's CFI
//     sharing);
//   - kept, shared tables: as the agent runs them now.
//
// Targets: the busypoll scenario (a small C program on libc: little CFI
// to read) and nodehot compute (node, whose binary holds 3.9 MiB of it),
// each in turn.
//
// Usage: go run ./bench/agentcost [-window 1s] [-rounds 8] [-targets busypoll,nodehot]
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/diagnose"
	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/stack"
	"github.com/cpuwhy/cpuwhy/internal/syscalls"
	"github.com/cpuwhy/cpuwhy/internal/syscalls/ebpf"
	"github.com/cpuwhy/cpuwhy/internal/target"
	"github.com/cpuwhy/cpuwhy/test/scenario"

	_ "github.com/cpuwhy/cpuwhy/internal/stack/runtimes"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "agentcost: %v\n", err)
		os.Exit(1)
	}
}

// way is one way of running the diagnoses: what they share.
type way struct {
	name    string
	options func() diagnose.Options // for one diagnosis
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("agentcost", flag.ContinueOnError)
	fs.SetOutput(stderr)
	window := fs.Duration("window", time.Second, "diagnosis window (-d)")
	rounds := fs.Int("rounds", 8, "rounds of each way on each target")
	targets := fs.String("targets", "busypoll,nodehot", "targets, in turn: busypoll, nodehot")
	only := fs.String("ways", "", "run only these ways, by their number in the table (1-3), comma-separated; default all")
	profile := fs.String("profile", "", "write a Go CPU profile of each counted diagnosis of the last way to FILE.TARGET.ROUND")
	if err := fs.Parse(args); err != nil {
		return err
	}
	kept := ebpf.NewKept()
	defer kept.Close()
	shared := func(unwindTables bool) *stack.Shared {
		s := stack.NewShared()
		s.FollowKernelCode(kept.Loads)
		if !unwindTables {
			s.KeepUnwindTables(0)
		}
		return s
	}
	keptTracers := []syscalls.Candidate{{Mechanism: syscalls.EBPF, New: func() syscalls.Tracer { return kept }}}
	base := diagnose.Options{FS: proc.FS{}, Duration: *window, Frequency: 99, KeepExited: true}
	ownTables, sharedTables := shared(false), shared(true)
	ways := []way{
		{"alone", func() diagnose.Options {
			o := base
			o.Tracers = []syscalls.Candidate{{Mechanism: syscalls.EBPF, New: func() syscalls.Tracer { return ebpf.New() }}}
			return o
		}},
		{"kept, own unwinding tables", func() diagnose.Options {
			o := base
			o.Tracers, o.Shared = keptTracers, ownTables
			return o
		}},
		{"kept, shared unwinding tables", func() diagnose.Options {
			o := base
			o.Tracers, o.Shared = keptTracers, sharedTables
			return o
		}},
	}
	if *only != "" {
		var chosen []way
		for _, n := range strings.Split(*only, ",") {
			i, err := strconv.Atoi(n)
			if err != nil || i < 1 || i > len(ways) {
				return fmt.Errorf("-ways %q: want numbers from 1 to %d", *only, len(ways))
			}
			chosen = append(chosen, ways[i-1])
		}
		ways = chosen
	}
	for _, name := range strings.Split(*targets, ",") {
		tg, stop, err := launch(name)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		res, err := measure(ctx, tg, ways, *rounds, *window, *profile, stderr)
		stop()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		fmt.Fprintf(stdout, "\n## %s (window %v, %d rounds of each way, alternating; medians)\n\n", name, *window, *rounds)
		fmt.Fprintln(stdout, "| diagnoses | CPU of a diagnosis | ratio to alone | wall beyond the window | samples |")
		fmt.Fprintln(stdout, "|---|---:|---:|---:|---:|")
		alone := median(res[ways[0].name], func(r result) float64 { return r.cpu })
		for _, w := range ways {
			rs := res[w.name]
			cpu := median(rs, func(r result) float64 { return r.cpu })
			fmt.Fprintf(stdout, "| %s | %.1f ms | %.2f | %.0f ms | %.0f |\n", w.name, 1000*cpu, cpu/alone,
				1000*median(rs, func(r result) float64 { return r.beyond }), median(rs, func(r result) float64 { return float64(r.samples) }))
		}
		o, b := sharedTables.UnwindTables()
		fmt.Fprintf(stdout, "\nunwinding tables kept by the shared way: %d objects, %.1f MiB\n", o, float64(b)/(1<<20))
	}
	return nil
}

type result struct {
	cpu, beyond float64 // seconds
	samples     int
}

func measure(ctx context.Context, tg target.Target, ways []way, rounds int, window time.Duration, profile string, stderr io.Writer) (map[string][]result, error) {
	res := map[string][]result{}

	// Two diagnoses of each way first, not counted: the first loads the
	// programs, reads the kernel's symbols and fills the caches; a way
	// whose first resolver read the kernel's symbols before the programs
	// were loaded reads them again at its second (FollowKernelCode), as
	// the agent's second diagnosis does.
	for i := -2; i < rounds; i++ {
		for _, w := range ways {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			var prof *os.File
			if profile != "" && i >= 0 && w.name == ways[len(ways)-1].name {
				var err error
				if prof, err = os.Create(fmt.Sprintf("%s.%s.%d", profile, tg.Name, i)); err != nil {
					return nil, err
				}
				if err := pprof.StartCPUProfile(prof); err != nil {
					return nil, err
				}
			}
			r, err := diagnose.Run(ctx, tg, w.options())
			if prof != nil {
				pprof.StopCPUProfile()
				prof.Close()
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", w.name, err)
			}
			c := r.Report.Cpuwhy
			fmt.Fprintf(stderr, "%s round %d, %s: %.1f ms of CPU, %.0f ms beyond the window\n", tg.Name, i+1, w.name, 1000*c.CPU, 1000*(c.Elapsed-window.Seconds()))
			if i >= 0 {
				res[w.name] = append(res[w.name], result{cpu: c.CPU, beyond: c.Elapsed - window.Seconds(), samples: c.Samples})
			}
		}
	}
	return res, nil
}

// launch starts a target and returns it with what stops it.
func launch(name string) (target.Target, func(), error) {
	var argv []string
	switch name {
	case "busypoll":
		p, err := scenario.Compile("busypoll")
		if err != nil {
			return target.Target{}, nil, err
		}
		argv = []string{p.Path}
	case "nodehot":
		p, err := scenario.Compile("nodehot")
		if err != nil {
			return target.Target{}, nil, err
		}
		// node itself, not the launcher's sh, whose exec would be
		// seen mid-window.
		argv = []string{"node", filepath.Join(filepath.Dir(p.Path), "ledger.js"), "compute"}
	default:
		return target.Target{}, nil, fmt.Errorf("no target %q", name)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return target.Target{}, nil, err
	}
	if err := cmd.Start(); err != nil {
		return target.Target{}, nil, err
	}
	stop := func() { cmd.Process.Kill(); cmd.Wait() }
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready") {
		stop()
		return target.Target{}, nil, fmt.Errorf("not ready: %q %v", line, err)
	}
	go io.Copy(io.Discard, out)
	pid := cmd.Process.Pid
	return target.Target{PID: pid, NsPID: pid, Name: filepath.Base(argv[0])}, stop, nil
}

func median(rs []result, f func(result) float64) float64 {
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
