// gcpressure: a Go program whose CPU goes to its garbage collector.
//
// Goroutines named Allocator (one per P, GOMAXPROCS left at its default)
// build short-lived garbage as fast as they can (makeGarbage: a 4 KiB
// buffer filled and dropped), while the program keeps a live heap of
// pointer-rich data: 1,000,000 linked 32-byte nodes, about 32 MiB, more
// than a VM's share of a last-level cache, so that marking misses the
// cache on any CPU (with 6 MiB, which an AMD EPYC's cache holds, the
// collector's share fell to 24% on one run and 55% on the next). With
// GOGC=100 every 32 MiB or so allocated starts a collection, and each
// collection must mark every live node, chasing pointers all over the
// heap. Marking a node costs far more than allocating its share of a
// buffer, so most of the CPU ends up in the collector (gcBgMarkWorker,
// scanobject, greyobject, and mark assists charged to the allocating
// goroutines inside mallocgc), not in makeGarbage. The fix is fewer
// allocations (reuse the buffer) or a larger GOGC, not more CPU.
//
// The binary is built normally, with its symbol table and DWARF (the
// stripped-Go case is gostripped), so stacks name runtime functions.
//
// Usage: gcpressure [RATE]
//
//	RATE  buffers allocated per second, all Allocators together; 0 or
//	      absent: as fast as possible (the bug). Paced, the same program
//	      collects now and then and is mostly idle.
//
// The Allocators are locked to their threads, which they name Allocator
// (prctl PR_SET_NAME), so per-thread tools can tell them from the
// runtime's other threads; the collector's background workers run on
// those other threads.
//
// Counting: on SIGUSR1 the program writes the runtime's own accounting
// (runtime/metrics) to the file named by SCENARIO_COUNT_FILE, as one line
//
//	gc_cpu_ns=N busy_cpu_ns=N gc_cycles=N buffers=N
//
// (CPU time the runtime attributes to the collector, and to anything but
// idle Ps: its estimates, comparable with each other, not with /proc's;
// collections so far; buffers allocated), written to a temporary file and
// renamed into place. Without
// SCENARIO_COUNT_FILE, SIGUSR1 is ignored.
//
// Prints "ready" once every Allocator runs.
package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

const (
	liveNodes  = 1_000_000
	bufferSize = 4096
	minTick    = 10 * time.Millisecond // pacing sleeps at most 100 times a second
)

type node struct {
	left, right *node
	value       int64
	_           int64
}

var (
	live    []*node // the live heap, kept for the whole run
	sink    atomic.Pointer[[]byte]
	buffers atomic.Uint64
)

// buildLiveHeap links the nodes at random, so marking them chases
// pointers across the whole heap instead of walking it in order.
func buildLiveHeap() {
	live = make([]*node, liveNodes)
	for i := range live {
		live[i] = &node{value: int64(i)}
	}
	for _, n := range live {
		n.left = live[rand.IntN(liveNodes)]
		n.right = live[rand.IntN(liveNodes)]
	}
}

// makeGarbage allocates a buffer, uses it and drops it.
//
//go:noinline
func makeGarbage(seq uint64) {
	buf := make([]byte, bufferSize)
	for i := 0; i < len(buf); i += 512 {
		buf[i] = byte(seq)
	}
	if seq%1024 == 0 {
		sink.Store(&buf) // escape now and then, so the compiler keeps it on the heap
	}
}

// nameThread names the calling thread, as prctl(PR_SET_NAME) does in C.
func nameThread(name string) {
	b := append([]byte(name), 0)
	syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_NAME, uintptr(unsafe.Pointer(&b[0])), 0)
}

func allocator(rate int64, started *sync.WaitGroup) {
	runtime.LockOSThread()
	nameThread("Allocator")
	started.Done()
	var batch int64
	var tick time.Duration
	if rate > 0 {
		// The smallest batch whose tick is at least minTick.
		batch = max(1, (rate*int64(minTick)+int64(time.Second)-1)/int64(time.Second))
		tick = time.Duration(float64(batch) * float64(time.Second) / float64(rate))
	}
	deadline := time.Now()
	for seq := uint64(0); ; seq++ {
		makeGarbage(seq)
		buffers.Add(1)
		if batch > 0 && int64(seq+1)%batch == 0 {
			deadline = deadline.Add(tick)
			if time.Since(deadline) > time.Second {
				deadline = time.Now() // fell behind: start afresh, no burst
			}
			time.Sleep(time.Until(deadline))
		}
	}
}

func writeCounts(file string) error {
	samples := []metrics.Sample{
		{Name: "/cpu/classes/gc/total:cpu-seconds"},
		{Name: "/cpu/classes/total:cpu-seconds"},
		{Name: "/cpu/classes/idle:cpu-seconds"},
		{Name: "/gc/cycles/total:gc-cycles"},
	}
	metrics.Read(samples)
	ns := func(s metrics.Sample) int64 { return int64(s.Value.Float64() * 1e9) }
	line := fmt.Sprintf("gc_cpu_ns=%d busy_cpu_ns=%d gc_cycles=%d buffers=%d\n",
		ns(samples[0]), ns(samples[1])-ns(samples[2]), samples[3].Value.Uint64(), buffers.Load())
	if err := os.WriteFile(file+".tmp", []byte(line), 0o644); err != nil {
		return err
	}
	return os.Rename(file+".tmp", file)
}

func main() {
	var rate int64
	if len(os.Args) > 1 {
		r, err := strconv.ParseInt(os.Args[1], 10, 64)
		if err != nil || r < 0 {
			fmt.Fprintf(os.Stderr, "%s: RATE must be a number of allocations per second >= 0, not %s\n", os.Args[0], os.Args[1])
			os.Exit(2)
		}
		rate = r
	}
	if file := os.Getenv("SCENARIO_COUNT_FILE"); file != "" {
		usr1 := make(chan os.Signal, 1)
		signal.Notify(usr1, syscall.SIGUSR1)
		go func() {
			for range usr1 {
				if err := writeCounts(file); err != nil {
					fmt.Fprintln(os.Stderr, "gcpressure:", err)
				}
			}
		}()
	} else {
		signal.Ignore(syscall.SIGUSR1)
	}

	buildLiveHeap()
	n := runtime.GOMAXPROCS(0)
	perAllocator := int64(0)
	if rate > 0 {
		perAllocator = max(1, (rate+int64(n)-1)/int64(n))
	}
	var started sync.WaitGroup
	started.Add(n)
	for range n {
		go allocator(perAllocator, &started)
	}
	started.Wait()
	fmt.Println("ready")
	select {}
}
