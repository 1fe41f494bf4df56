package proc_test

import (
	"bufio"
	"os/exec"
	"strconv"
	"testing"

	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/test/scenario"
)

// benchThreads is the size of the process BenchmarkScan reads.
const benchThreads = 1000

// BenchmarkScan reads one process of benchThreads sleeping threads, to
// follow the per-thread cost of a scan (ns/thread) apart from the rest of
// the host. A whole refresh on a loaded host is measured by bench/topcost.
func BenchmarkScan(b *testing.B) {
	pid := startThreads(b, benchThreads)
	opts := func(threads bool) proc.ScanOptions {
		return proc.ScanOptions{Threads: threads, PIDs: []int{pid}}
	}
	run := func(b *testing.B, threads, cold bool) {
		sc := proc.NewScanner(proc.FS{})
		if _, err := sc.Scan(opts(threads)); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if cold {
				sc = proc.NewScanner(proc.FS{})
			}
			snap, err := sc.Scan(opts(threads))
			if err != nil || len(snap.Processes) != 1 {
				b.Fatalf("scan of %d: %d processes, %v", pid, len(snap.Processes), err)
			}
		}
		if threads {
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(benchThreads+1), "ns/thread")
		}
	}
	b.Run("process", func(b *testing.B) { run(b, false, false) })
	// Every thread's stat is read.
	b.Run("threads-cold", func(b *testing.B) { run(b, true, true) })
	// The process is idle, so its threads are carried over from the last
	// scan: the cost is the process's stat alone.
	b.Run("threads-idle", func(b *testing.B) { run(b, true, false) })
}

func startThreads(b *testing.B, n int) int {
	p, err := scenario.Compile("threads")
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(p.Path, strconv.Itoa(n))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "ready\n" {
		b.Fatalf("threads %d: first line %q, %v", n, line, err)
	}
	return cmd.Process.Pid
}
