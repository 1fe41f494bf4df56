package verdict

import (
	"fmt"
	"slices"
	"strings"

	"github.com/cpuwhy/cpuwhy/internal/syscalls"
)

// goGCFrames are the Go runtime's functions of garbage collection: a
// sample with one of them on its stack was spent collecting (background
// marking, a goroutine's assist, sweeping, stack scans).
var goGCFrames = []string{
	"runtime.gcBgMarkWorker", "runtime.gcAssistAlloc", "runtime.gcDrain", "runtime.gcDrainN",
	"runtime.scanobject", "runtime.markroot", "runtime.bgsweep", "runtime.sweepone",
	"runtime.gcMarkTermination", "runtime.scanstack", "runtime.greyobject", "runtime.wbBufFlush",
}

// jvmGCThread reports whether a JVM thread name is one of a collector's
// (HotSpot's G1, Parallel, Serial, ZGC and Shenandoah workers).
func jvmGCThread(name string) bool {
	for _, p := range []string{"GC Thread#", "G1 ", "ParGC", "VM Thread", "ZWorker", "ZDriver", "Shenandoah", "Gang worker"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

func inGC(s Stack) bool {
	for _, f := range s.Frames {
		if slices.Contains(goGCFrames, f) {
			return true
		}
	}
	return false
}

func gcPressure(o *Observation) (*Verdict, []int) {
	var share, cpu float64
	var covered []int
	var top *Thread
	var topN float64
	switch o.Runtime {
	case "go":
		if o.Samples == 0 {
			return nil, nil
		}
		var gc int
		for i := range o.Threads {
			t := &o.Threads[i]
			n := 0
			for _, s := range t.Stacks {
				if inGC(s) {
					n += s.Count
				}
			}
			gc += n
			if t.Samples > 0 && 2*n >= t.Samples {
				covered = append(covered, t.TID)
			}
			if n > 0 && float64(n) > topN {
				top, topN = t, float64(n)
			}
		}
		share = float64(gc) / float64(o.Samples)
		cpu = share * o.CPU.Total
	case "jvm":
		for i := range o.Threads {
			t := &o.Threads[i]
			if jvmGCThread(t.Name) {
				cpu += t.CPU.Total
				covered = append(covered, t.TID)
				if t.CPU.Total > topN {
					top, topN = t, t.CPU.Total
				}
			}
		}
		if o.CPU.Total > 0 {
			share = cpu / o.CPU.Total
		}
	default:
		return nil, nil
	}
	if top == nil || share < GCShare || cpu < HotThreadCPU {
		return nil, nil
	}
	v := newVerdict(GCPressure, top)
	v.CPU = round1(cpu)
	v.Summary = fmt.Sprintf("the %s garbage collector takes %.0f%% of the process's CPU: the program allocates short-lived memory faster than it is worth collecting",
		map[string]string{"go": "Go", "jvm": "JVM"}[o.Runtime], 100*share)
	v.Evidence = []string{fmt.Sprintf("process %s (PID %d) used %.1f%% of a core, %.1f%% of a core of it collecting garbage", o.Name, o.PID, o.CPU.Total, cpu)}
	if o.Runtime == "go" {
		v.Evidence = append(v.Evidence, fmt.Sprintf("%.0f%% of %d stack samples have a collector function (%s...) on the stack", 100*share, o.Samples, goGCFrames[0]))
		v.Advice = "allocate less in the hot path (reuse buffers, sync.Pool, avoid converting []byte/string and boxing into interfaces); if the live heap is small, raise GOGC or set GOMEMLIMIT so the collector runs less often; `go tool pprof -sample_index=alloc_space` shows who allocates"
	} else {
		v.Evidence = append(v.Evidence, fmt.Sprintf("%d collector threads (GC Thread#, G1 ...) hold that CPU", len(covered)))
		v.Advice = "allocate less in the hot path; give the heap room (-Xmx) if it runs near full; check the GC log (-Xlog:gc) for back-to-back collections"
	}
	v.Evidence = append(v.Evidence, stackLine(top)...)
	return v, covered
}

func processChurn(o *Observation) (*Verdict, []int) {
	var forks, waits uint64
	var top *Thread
	var topN uint64
	for i := range o.Threads {
		t := &o.Threads[i]
		var n uint64
		for _, s := range t.Syscalls {
			switch {
			case slices.Contains(syscalls.ForkCalls, s.Name):
				n += s.OK
			case slices.Contains(syscalls.WaitChildCalls, s.Name):
				// A wait that returned a child reaped one; WNOHANG's
				// "none yet" returns 0.
				waits += s.OK - s.Zero
			}
		}
		forks += n
		if n > topN || top == nil && waits > 0 {
			top, topN = t, n
		}
	}
	r := float64(waits) / o.Seconds
	if top == nil || r < ChurnRate && o.Children < ChurnChildrenCPU {
		return nil, nil
	}
	v := newVerdict(ProcessChurn, top)
	v.CPU = round1(o.CPU.Total + o.Children)
	v.Summary = fmt.Sprintf("process %s starts short-lived child processes in a loop: %s children started and reaped, and their start-up is where the CPU goes", o.Name, rate(r))
	v.Evidence = []string{
		fmt.Sprintf("%s children reaped (wait4/waitid), %s fork/clone calls", rate(r), rate(float64(forks)/o.Seconds)),
		fmt.Sprintf("the children used %.1f%% of a core, the process itself %.1f%%", o.Children, o.CPU.Total),
	}
	v.Evidence = append(v.Evidence, stackLine(top)...)
	v.Advice = "do the work in-process instead of running a command each time (a library call instead of exec); keep a long-lived worker; if a health check or cron runs this, lower its frequency"
	return v, []int{top.TID}
}

func lockContention(o *Observation) (*Verdict, []int) {
	var futex, calls uint64
	var cpu float64
	var tids []int
	var top *Thread
	var topN uint64
	errs := map[string]uint64{}
	for i := range o.Threads {
		t := &o.Threads[i]
		s := t.syscall("futex")
		if s == nil || float64(s.Count) < LockShare*float64(t.calls()) {
			continue
		}
		futex += s.Count
		calls += t.calls()
		cpu += t.CPU.Total
		tids = append(tids, t.TID)
		for e, n := range s.Errors {
			errs[e] += n
		}
		if s.Count > topN {
			top, topN = t, s.Count
		}
	}
	if len(tids) < 2 || float64(futex)/o.Seconds < LockRate || cpu < HotThreadCPU {
		return nil, nil
	}
	v := newVerdict(LockContention, top)
	v.CPU = round1(cpu)
	v.Syscall = str("futex")
	v.Summary = fmt.Sprintf("%d threads contend for a lock: they hand it over through the kernel %s (futex wait/wake), and spend their CPU doing so",
		len(tids), rate(float64(futex)/o.Seconds))
	ev := fmt.Sprintf("futex called %s by %d threads (%.0f%% of their calls), %.1f%% of a core between them", rate(float64(futex)/o.Seconds), len(tids), pct(float64(futex), float64(calls)), cpu)
	if n := errs["EAGAIN"]; n > 0 {
		ev += fmt.Sprintf("; %.0f%% of the waits found the lock already released (EAGAIN)", pct(float64(n), float64(futex)))
	}
	v.Evidence = append([]string{ev}, stackLine(top)...)
	v.Advice = "hold the lock for less time or less often: move work out of the critical section, shard the data behind several locks, batch items per acquisition, or use per-thread state and merge"
	return v, tids
}

func idle(o *Observation) Verdict {
	v := Verdict{Pattern: Healthy, CPU: round1(o.CPU.Total)}
	if len(o.Threads) > 0 {
		v.Thread = ThreadRef{TID: o.Threads[0].TID, Name: o.Threads[0].Name}
		if len(o.Threads[0].Stacks) > 0 {
			v.Stack = o.Threads[0].Stacks[0].Frames
		}
	}
	v.Summary = fmt.Sprintf("process %s is not burning CPU: %.1f%% of a core over %.1f s", o.Name, o.CPU.Total+o.Children, o.Seconds)
	v.Evidence = []string{fmt.Sprintf("below %.0f%% of a core, the cost of a daemon's housekeeping", BusyCPU)}
	v.Advice = "nothing to fix here; if the CPU comes in bursts, run cpuwhy while it burns (-d for a longer window)"
	return v
}

func busyHealthy(o *Observation) Verdict {
	v := idle(o)
	v.CPU = round1(o.CPU.Total + o.Children)
	var calls, ok uint64
	for i := range o.Threads {
		for _, s := range o.Threads[i].Syscalls {
			calls += s.Count
			ok += s.OK
		}
	}
	v.Summary = fmt.Sprintf("process %s is busy doing real work: %.1f%% of a core, with no sign of a loop that spins for nothing", o.Name, v.CPU)
	if o.NoSyscalls {
		v.Summary = fmt.Sprintf("process %s is busy (%.1f%% of a core), and without its syscalls cpuwhy cannot tell a loop from real work", o.Name, v.CPU)
	}
	v.Evidence = []string{fmt.Sprintf("%s syscalls, %.0f%% of them successful; no fruitless call repeated at %s or more", rate(float64(calls)/o.Seconds), pct(float64(ok), float64(calls)), rate(LoopRate))}
	if len(o.Threads) > 0 {
		v.Evidence = append(v.Evidence, cpuLine(&o.Threads[0]))
		v.Evidence = append(v.Evidence, stackLine(&o.Threads[0])...)
	}
	v.Advice = "if this load is more than expected, look at what drives it (requests per second, clients); `cpuwhy record` gives a flame graph of where the work goes"
	return v
}
