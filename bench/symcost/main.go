// Command symcost measures what naming code addresses costs cpuwhy the
// first time and once its tables are loaded, side by side in one run with
// addr2line (binutils), eu-addr2line (elfutils) and llvm-addr2line, on a
// generated 100 MB binary with DWARF, on libc with its separate debug
// file, and on a real big binary found on the machine. See
// bench/README.md for the method.
//
// Usage: go run ./bench/symcost [-n 1000] [-rounds 3] [-real /usr/bin/node]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
)

type options struct {
	n           int
	rounds      int
	seed        uint64
	shape       shape
	real        []string
	tools       []string
	progress    io.Writer
	noCompare   bool
	differences int
}

// The main goroutine stays on the main thread: the measured processes are
// traced (see runMeasured), and ptrace requests must come from the thread
// that started the tracee; the real binaries are held stopped by it too.
func init() { runtime.LockOSThread() }

func main() {
	if len(os.Args) > 1 && os.Args[1] == childArg {
		if err := child(os.Args[2:], os.Stdin, os.Stdout); err != nil {
			fmt.Fprintf(os.Stderr, "symcost child: %v\n", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "symcost: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("symcost", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.n, "n", 1000, "addresses symbolized the first time; the warm cost is taken over 9n more")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds the measurements are interleaved in (medians are reported)")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the random choice of addresses")
	fs.IntVar(&o.shape.Units, "units", 280, "compilation units of the generated binary")
	fs.IntVar(&o.shape.Funcs, "funcs", 30, "looping functions per unit")
	fs.IntVar(&o.shape.Accessors, "accessors", 100, "one-line functions per unit")
	fs.IntVar(&o.shape.Statements, "statements", 12, "straight-line statements per looping function")
	realBins := fs.String("real", "/usr/bin/node", "comma-separated real binaries with DWARF to measure too (started with -e for node, else with no argument); empty for none")
	tools := fs.String("tools", "addr2line,eu-addr2line,llvm-addr2line-14", "comma-separated tools to compare with, those installed")
	fs.BoolVar(&o.noCompare, "no-compare", false, "measure cpuwhy only")
	fs.IntVar(&o.differences, "differences", 0, "list up to this many addresses per object that cpuwhy and addr2line name differently")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *realBins != "" {
		o.real = strings.Split(*realBins, ",")
	}
	o.tools = strings.Split(*tools, ",")
	o.progress = stderr
	return bench(ctx, o, stdout)
}
