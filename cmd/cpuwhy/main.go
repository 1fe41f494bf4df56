// Command cpuwhy tells why a process or a container is burning CPU.
package main

import (
	"os"
	"runtime/debug"

	"github.com/cpuwhy/cpuwhy/internal/cli"
)

func main() {
	// cpuwhy runs on the machine it diagnoses, often a small one: half
	// the collector's default headroom (the heap may grow to 1.5 times
	// what is live, not twice) cut its peak memory by about 5 MiB
	// (bench/memory) for a few milliseconds of CPU at start-up, when the
	// symbol tables are read. GOGC, when set, still decides.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	os.Exit(cli.Main(os.Args[1:], cli.Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}))
}
