package verdict

import (
	"fmt"
	"slices"
	"strings"
)

// gc_pressure: the garbage collector of a Go program or a Java virtual
// machine takes the CPU. It is judged on the process: the collector runs
// on threads of its own (JVM) or on any thread (Go).
//
// Thresholds: GCShare or more of the process's samples in Go's collector
// (or of its CPU in JVM GC threads), and the collector's CPU HotThreadCPU
// or more (rules.go). The Go threads with half or more of their samples in
// the collector are then not judged on their own.

// GCShare is the part of the process's samples in its garbage
// collector (Go) or of its CPU in GC threads (JVM) above which
// collection is the problem: a healthy Go service spends about 25%
// of its CPU in the collector by design (GOGC's target), so more than
// 40% is pressure.
const GCShare = 0.4

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

// JVMCollector names the collector a JVM runs by the threads it
// started (HotSpot names them by collector): G1 has its "G1 ..." threads,
// ZGC "ZDriver" and "ZWorker", Shenandoah its own; Parallel has only
// "GC Thread#N" workers; Serial none, its collections run in the VM
// Thread. "" when no JVM thread is among them.
func JVMCollector(names []string) string {
	var workers, vmThread bool
	for _, n := range names {
		switch {
		case strings.HasPrefix(n, "G1 "):
			return "G1"
		case strings.HasPrefix(n, "ZDriver"), strings.HasPrefix(n, "ZWorker"), strings.HasPrefix(n, "ZDirector"):
			return "ZGC"
		case strings.HasPrefix(n, "Shenandoah"):
			return "Shenandoah"
		case strings.HasPrefix(n, "GC Thread#"), strings.HasPrefix(n, "ParGC"):
			workers = true
		case n == "VM Thread":
			vmThread = true
		}
	}
	switch {
	case workers:
		return "Parallel"
	case vmThread:
		return "Serial"
	}
	return ""
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
	v.CPU, v.CPUOf = round1(cpu), CPUOfCollector
	collector := "Go"
	if o.Runtime == "jvm" {
		names := make([]string, len(o.Threads))
		for i, t := range o.Threads {
			names[i] = t.Name
		}
		collector = "JVM"
		if c := JVMCollector(names); c != "" {
			collector = "JVM's " + c
		}
	}
	v.Summary = fmt.Sprintf("the %s garbage collector takes %.0f%% of the process's CPU: the program allocates short-lived memory faster than it is worth collecting",
		collector, 100*share)
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
