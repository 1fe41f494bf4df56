package agent

import (
	"bytes"
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/diagnose"
	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/stack"
	"github.com/cpuwhy/cpuwhy/internal/syscalls"
	"github.com/cpuwhy/cpuwhy/internal/syscalls/ebpf"
	"github.com/cpuwhy/cpuwhy/internal/target"
	"github.com/cpuwhy/cpuwhy/test/spinner"

	_ "github.com/cpuwhy/cpuwhy/internal/stack/runtimes"
)

// rounds is how many diagnoses TestManyDiagnoses runs in one process. The
// issue asks for 1,000; at a 200 ms window and about as much again to set
// up, 1,000 take seven minutes of a shared machine, so the test runs 150
// (warm-up 30) and CPUWHY_DIAGNOSES=1000 runs the full count.
func rounds() int {
	if n, err := strconv.Atoi(os.Getenv("CPUWHY_DIAGNOSES")); err == nil && n > 40 {
		return n
	}
	return 150
}

// usage is what a long-lived process must not accumulate.
type usage struct {
	rss        int64 // bytes
	heap       uint64
	fds        int
	goroutines int
	threads    int
	objects    int // whose names the diagnoses share
	// unwinding tables the diagnoses share: objects, bytes
	unwindObjects int
	unwindBytes   int64
}

func measure(t *testing.T) usage {
	t.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	var u usage
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range bytes.Split(status, []byte("\n")) {
		if f := bytes.Fields(l); len(f) == 3 && string(f[0]) == "VmRSS:" {
			kb, _ := strconv.ParseInt(string(f[1]), 10, 64)
			u.rss = kb << 10
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	u.heap = ms.HeapInuse
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	u.fds = len(fds)
	u.goroutines = runtime.NumGoroutine()
	if tasks, err := os.ReadDir("/proc/self/task"); err == nil {
		u.threads = len(tasks)
	}
	if os.Getenv("CPUWHY_DUMP_MAPS") != "" {
		b, _ := os.ReadFile("/proc/self/smaps")
		os.WriteFile(os.Getenv("CPUWHY_DUMP_MAPS")+"."+strconv.Itoa(dumps), b, 0o644)
		dumps++
	}
	return u
}

// Many diagnoses in a row in one process, as an agent runs them, keep its
// RSS, heap, fds and goroutines flat: what a diagnosis opens it closes,
// what it loads it unloads, and what the diagnoses share (the eBPF
// programs kept loaded, the kernel's symbols, the objects' names and
// unwinding tables) stays the size it had after the first.
func TestManyDiagnoses(t *testing.T) {
	n := rounds()
	const warmup = 30
	sn := spinner.Name()
	sp := spinner.Start(t, sn, 0, 0)
	tg := target.Target{PID: sp.PID, NsPID: sp.PID, Name: sn}
	kept := ebpf.NewKept()
	defer kept.Close()
	shared := stack.NewShared()
	shared.FollowKernelCode(kept.Loads)
	opts := diagnose.Options{
		Duration: 200 * time.Millisecond, Frequency: 99,
		Tracers: []syscalls.Candidate{{Mechanism: syscalls.EBPF, New: func() syscalls.Tracer { return kept }}},
		FS:      proc.FS{},
		// As the agent runs them.
		KeepExited: true,
		Shared:     shared,
	}
	var base usage
	began := time.Now()
	for i := range n {
		res, err := diagnose.Run(context.Background(), tg, opts)
		if err != nil {
			t.Fatalf("diagnosis %d: %v", i, err)
		}
		if res.Report.Cpuwhy.Mechanism != syscalls.EBPF || res.Profile == nil {
			t.Fatalf("diagnosis %d: mechanism %q, profile %v", i, res.Report.Cpuwhy.Mechanism, res.Profile != nil)
		}
		if i+1 == warmup {
			base = measure(t)
			base.objects = shared.Objects()
			base.unwindObjects, base.unwindBytes = shared.UnwindTables()
		}
	}
	end := measure(t)
	end.objects = shared.Objects()
	end.unwindObjects, end.unwindBytes = shared.UnwindTables()
	// What the diagnoses share is the agent's for its life: held here
	// through the measure, as the agent holds it.
	runtime.KeepAlive(opts.Shared)
	t.Logf("%d diagnoses in %.0f s; after %d: RSS %.1f MiB, heap %.1f MiB, %d fds, %d goroutines, %d threads, %d objects cached, unwinding tables of %d (%.2f MiB); after %d: RSS %.1f MiB, heap %.1f MiB, %d fds, %d goroutines, %d threads, %d objects cached, unwinding tables of %d (%.2f MiB)",
		n, time.Since(began).Seconds(), warmup, mib(base.rss), mib(int64(base.heap)), base.fds, base.goroutines, base.threads, base.objects, base.unwindObjects, mib(base.unwindBytes),
		n, mib(end.rss), mib(int64(end.heap)), end.fds, end.goroutines, end.threads, end.objects, end.unwindObjects, mib(end.unwindBytes))
	// fds and goroutines are counts: flat means equal. A leak of one per
	// diagnosis would show 120. The one exception is an object whose
	// names the shared cache takes when a sample first lands in it
	// (rare code of the target: ld.so, a libc function), with up to two
	// files open: the cache is bounded (64 objects), the count is not.
	if end.fds > base.fds+2*(end.objects-base.objects) {
		t.Errorf("fds grew from %d to %d over %d diagnoses (objects cached: %d, then %d)", base.fds, end.fds, n-warmup, base.objects, end.objects)
	}
	if end.objects > 64 {
		t.Errorf("%d objects' names cached, over the bound of 64", end.objects)
	}
	// The spinner maps the same objects all along: their unwinding
	// tables, read by the first diagnosis, are all there is to keep.
	if end.unwindObjects != base.unwindObjects || end.unwindBytes != base.unwindBytes || base.unwindObjects == 0 {
		t.Errorf("unwinding tables kept: %d objects (%d bytes) after %d diagnoses, %d (%d bytes) after %d; want the same, and some",
			base.unwindObjects, base.unwindBytes, warmup, end.unwindObjects, end.unwindBytes, n)
	}
	if end.goroutines > base.goroutines {
		t.Errorf("goroutines grew from %d to %d over %d diagnoses", base.goroutines, end.goroutines, n-warmup)
	}
	if end.threads > base.threads+2 {
		t.Errorf("threads grew from %d to %d over %d diagnoses", base.threads, end.threads, n-warmup)
	}
	// Memory is sizes, which the collector and the allocator move by a few
	// MiB either way (the pages of the Go heap's arena that stay resident
	// after a collection: 2.9 to 5.2 MiB in one run with the heap in use
	// flat at 1.4 MiB). A leak of 100 KiB per diagnosis would add 12 MiB
	// over 120 diagnoses, and more over more: the bound is 10 MiB, scaled
	// with the count.
	if limit := 10 << 20 * int64(n-warmup) / 120; end.rss-base.rss > limit {
		t.Errorf("RSS grew from %.1f to %.1f MiB over %d diagnoses (bound %.0f MiB)", mib(base.rss), mib(end.rss), n-warmup, mib(limit))
	}
	if float64(end.heap) > 1.25*float64(base.heap) {
		t.Errorf("heap grew from %.1f to %.1f MiB over %d diagnoses", mib(int64(base.heap)), mib(int64(end.heap)), n-warmup)
	}
}

var dumps int

func mib(b int64) float64 { return float64(b) / (1 << 20) }
