// Command memory measures cpuwhy's peak memory against the length of its
// window, in one run: `cpuwhy record` and the diagnosis of one hot thread
// at 99 Hz (the busypoll scenario, pinned to one core), each window
// longer than the last. Samples are unwound and named as they arrive and
// counted by distinct stack, so the peak should not grow with the window;
// it grew by about 2 MiB a second when every sample was kept.
//
// The peak is the child's maximum resident set (getrusage's ru_maxrss of
// the reaped child), in MiB.
//
// Usage: go run ./bench/memory [-windows 10s,60s,10m] [-cpu 1]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/cpuwhy/cpuwhy/bench/internal/cpuwhybin"
	"github.com/cpuwhy/cpuwhy/test/scenario"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "memory: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("memory", flag.ContinueOnError)
	fs.SetOutput(stderr)
	windows := fs.String("windows", "10s,60s", "windows to measure, comma-separated")
	cpu := fs.Int("cpu", 1, "core the target is pinned to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var ds []time.Duration
	for _, w := range strings.Split(*windows, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(w))
		if err != nil {
			return fmt.Errorf("-windows: %w", err)
		}
		ds = append(ds, d)
	}
	tmp, err := os.MkdirTemp("", "memory-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin, err := cpuwhybin.Build(tmp, stderr)
	if err != nil {
		return err
	}
	target, err := scenario.LaunchBusypoll(*cpu, tmp)
	if err != nil {
		return err
	}
	defer target.Stop()
	pid := strconv.Itoa(target.PID())

	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "window\trecord peak RSS\tdiagnosis peak RSS\t")
	for _, d := range ds {
		rec, err := peak(ctx, bin, "record", "-d", d.String(), "-o", filepath.Join(tmp, "p.pb.gz"), pid)
		if err != nil {
			return err
		}
		diag, err := peak(ctx, bin, "-d", d.String(), "--json", pid)
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "%v\t%.1f MiB\t%.1f MiB\t\n", d, rec, diag)
		tw.Flush()
	}
	return tw.Flush()
}

// peak runs cpuwhy with args and returns its maximum resident set, MiB.
func peak(ctx context.Context, bin string, args ...string) (float64, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout = io.Discard
	var errOut strings.Builder
	cmd.Stderr = &errOut
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("cpuwhy %s: %w: %s", strings.Join(args, " "), err, errOut.String())
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0, fmt.Errorf("no resource usage for cpuwhy %s", strings.Join(args, " "))
	}
	return float64(ru.Maxrss) / 1024, nil // ru_maxrss is in KiB on Linux
}
