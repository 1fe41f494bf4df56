// Command namecost measures what naming a runtime's frames costs: the CPU
// of one recording of a JVM and of a node, each spinning in one method or
// function and started with no flag, with the runtimes (hotspot, nodev8,
// perfmap) and without any (native names only), side by side in one run,
// and the part of the samples whose innermost frame a runtime named. For
// the JVM it also gives the CPU the JVM's Attach Listener thread spent
// writing its perf map (each recording with the runtimes asks once).
//
// The recordings run in this process (cpuprofile.Record, as the commands
// call it); their CPU is this process's user+system time over each one,
// from getrusage, which nothing else in the process uses meanwhile.
//
// Usage: go run ./bench/namecost [-window 3s] [-rounds 3]
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
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/cpuprofile"
	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/stack"
	_ "github.com/cpuwhy/cpuwhy/internal/stack/runtimes"
	"github.com/cpuwhy/cpuwhy/test/scenario"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "namecost: %v\n", err)
		os.Exit(1)
	}
}

type target struct {
	name, scenario, mode string
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("namecost", flag.ContinueOnError)
	fs.SetOutput(stderr)
	window := fs.Duration("window", 3*time.Second, "recording window")
	rounds := fs.Int("rounds", 3, "rounds (each: one recording without, one with the runtimes)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "| target | samples | recorder CPU, native names only | recorder CPU, runtimes | extra per sample (fixed cost included) | leaf named by a runtime | target's listener CPU per dump |")
	fmt.Fprintln(stdout, "|---|---:|---:|---:|---:|---:|---:|")
	for _, tg := range []target{{"JVM, compiled (javahot compute)", "javahot", "compute"}, {"JVM, interpreted (javahot huge)", "javahot", "huge"},
		{"node (nodehot compute)", "nodehot", "compute"}} {
		if err := measure(ctx, tg, *window, *rounds, stdout, stderr); err != nil {
			return fmt.Errorf("%s: %w", tg.name, err)
		}
	}
	return nil
}

func cpuNow() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func measure(ctx context.Context, tg target, window time.Duration, rounds int, stdout, stderr io.Writer) error {
	prog, err := scenario.Compile(tg.scenario)
	if err != nil {
		return err
	}
	cmd := exec.Command(prog.Path, tg.mode)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	pid := cmd.Process.Pid
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
		os.Remove(fmt.Sprintf("/tmp/perf-%d.map", pid))
		os.Remove(fmt.Sprintf("/tmp/.java_pid%d", pid))
	}()
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		return fmt.Errorf("not ready: %q %v", line, err)
	}
	time.Sleep(time.Second) // the JIT compiles the hot code
	var without, with []time.Duration
	var samples []int
	var named []float64
	dumps := 0
	for r := 0; r < rounds; r++ {
		for _, rts := range [][]stack.Runtime{{}, nil} {
			fmt.Fprintf(stderr, "%s: round %d, runtimes %v\n", tg.name, r+1, rts == nil)
			c0 := cpuNow()
			res, err := cpuprofile.Record(ctx, pid, cpuprofile.Options{FS: proc.FS{}, Duration: window,
				NsPID: proc.FS{}.Identity(pid).NsPID, Runtimes: rts})
			if err != nil {
				return err
			}
			cpu := cpuNow() - c0
			if rts != nil {
				without = append(without, cpu)
				continue
			}
			with = append(with, cpu)
			samples = append(samples, res.Samples)
			named = append(named, leafNamed(res))
			for _, n := range res.Notes {
				if strings.Contains(n, "asked the JVM") {
					dumps++
				}
			}
		}
	}
	listener := "—"
	if dumps > 0 {
		if t, ok := threadCPU(pid, "Attach Listener"); ok {
			listener = fmt.Sprintf("%.1f ms", float64(t.Microseconds())/1000/float64(dumps))
			if t == 0 { // below the 10 ms tick of the kernel's account
				listener = fmt.Sprintf("< %.1f ms", 10/float64(dumps))
			}
		}
	}
	w, wo, n := median(with), median(without), medianInt(samples)
	extra := "—"
	if n > 0 {
		extra = fmt.Sprintf("%.0f µs", float64((w-wo).Microseconds())/float64(n))
	}
	slices.Sort(named)
	fmt.Fprintf(stdout, "| %s | %d | %.0f ms | %.0f ms | %s | %.0f%% | %s |\n", tg.name, n,
		float64(wo.Microseconds())/1000, float64(w.Microseconds())/1000, extra, 100*named[len(named)/2], listener)
	return nil
}

// leafNamed is the part of the samples whose innermost user frame a
// runtime named.
func leafNamed(res *cpuprofile.Result) float64 {
	var n, all int64
	for _, s := range res.Profile.Stacks {
		all += s.Count
		for _, f := range s.Frames {
			if f.IsKernel() {
				continue
			}
			if f.Kind != stack.Native {
				n += s.Count
			}
			break
		}
	}
	if all == 0 {
		return 0
	}
	return float64(n) / float64(all)
}

// threadCPU is the CPU of process pid's thread called name, from its
// stat (utime + stime, in clock ticks of 10 ms).
func threadCPU(pid int, name string) (time.Duration, bool) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, _ := os.ReadDir(dir)
	for _, task := range tasks {
		comm, _ := os.ReadFile(filepath.Join(dir, task.Name(), "comm"))
		if strings.TrimSpace(string(comm)) != name {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(dir, task.Name(), "stat"))
		if err != nil {
			return 0, false
		}
		s := string(stat)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(fields) < 13 {
			return 0, false
		}
		u, _ := strconv.ParseUint(fields[11], 10, 64)
		k, _ := strconv.ParseUint(fields[12], 10, 64)
		return time.Duration(u+k) * 10 * time.Millisecond, true
	}
	return 0, false
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func medianInt(d []int) int {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
