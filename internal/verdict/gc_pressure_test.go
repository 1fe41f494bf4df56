package verdict

import "testing"

func TestGCPressure(t *testing.T) {
	// jvm is a JVM whose two GC threads use gc of a core between them,
	// beside a thread using the rest of 100% in the kernel's work.
	jvm := func(gc float64) *Observation {
		o := obs(thread(1, "main", cpu(0, 100-gc)), thread(2, "GC Thread#0", cpu(gc/2, 0)), thread(3, "GC Thread#1", cpu(gc/2, 0)))
		o.Runtime = "jvm"
		return o
	}
	// collecting is a Go program whose first thread, at 95% of a core,
	// has 60% of its samples in the collector, and whose second, at 10%,
	// has what brings the process's samples in the collector to share.
	collecting := func(share float64) *Observation {
		o := obs(gcStacks(thread(1, "gcpressure", cpu(90, 5)), 0.6), gcStacks(thread(2, "gcpressure", cpu(10, 0)), 2*share-0.6))
		o.Runtime = "go"
		return o
	}
	testJudge(t, []judgeCase{
		{name: "gc pressure", o: goProc(0.6, cpu(90, 5)), want: GCPressure},
		// The mutator's own work is then what the CPU goes to.
		{name: "gc at GOGC's design share", o: goProc(0.25, cpu(90, 5)), want: ComputeLoop},

		// Below, the first thread's CPU is its own work; above, the
		// collector's, and that thread is not judged on its own.
		{name: "Go collector just below GCShare of the samples", o: collecting(0.99 * GCShare), want: ComputeLoop, tid: 1},
		{name: "Go collector just above GCShare of the samples", o: collecting(1.01 * GCShare), want: GCPressure, tid: 1},
		{name: "JVM GC threads just below GCShare of the CPU", o: jvm(0.99 * GCShare * 100), want: Healthy},
		{name: "JVM GC threads just above GCShare of the CPU", o: jvm(1.01 * GCShare * 100), want: GCPressure, tid: 2},
		// Its share is pressure, but the collector costs less than a hot
		// thread: its threads are then not hot either.
		{name: "Go collector's CPU just below HotThreadCPU", o: goProc(0.6, cpu(0.99*HotThreadCPU/0.6/2, 0)), want: Healthy},
		{name: "Go collector's CPU just above HotThreadCPU", o: goProc(0.6, cpu(1.01*HotThreadCPU/0.6/2, 0)), want: GCPressure},
	})
}

func TestJVMCollector(t *testing.T) {
	for _, tt := range []struct {
		names []string
		want  string
	}{
		{[]string{"java", "GC Thread#0", "G1 Main Marker", "G1 Conc#0", "VM Thread"}, "G1"},
		{[]string{"java", "GC Thread#0", "GC Thread#1", "VM Thread"}, "Parallel"},
		{[]string{"java", "VM Thread", "C2 CompilerThre"}, "Serial"},
		{[]string{"java", "ZDriver", "ZWorker#0", "VM Thread"}, "ZGC"},
		{[]string{"java", "Shenandoah Control Thread", "VM Thread"}, "Shenandoah"},
		{[]string{"node", "worker"}, ""},
	} {
		if got := JVMCollector(tt.names); got != tt.want {
			t.Errorf("JVMCollector(%q) = %q, want %q", tt.names, got, tt.want)
		}
	}
}
