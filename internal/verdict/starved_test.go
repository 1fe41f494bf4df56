package verdict

import (
	"strings"
	"testing"
)

// sharing is a process of n threads that each ran c% of a core and wanted
// (ran or waited) d%, on CPU 1 of a two-CPU host, with two compute loops
// beside it there.
func sharing(n int, c, d float64) *Observation {
	var ts []Thread
	for i := 0; i < n; i++ {
		ts = append(ts, demand(thread(10+i, "Worker", cpu(c, 0)), d))
	}
	o := obs(ts...)
	o.Host = &Host{CPUs: 2, Allowed: []int{1}, PerCPU: []HostModes{{CPU: 0, User: 10, Idle: 90}, {CPU: 1, User: 99, System: 1}}}
	o.Neighbours = []Neighbour{
		{PID: 501, Name: "compute", CPU: 33.2, Shared: 33.2, Allowed: []int{1}},
		{PID: 502, Name: "compute", CPU: 33.1, Shared: 33.1, Container: "docker 0247046d3c16", Nice: -5, Allowed: []int{1}},
		{PID: 503, Name: "go", CPU: 40, Shared: 20, Allowed: []int{0, 1}},
	}
	o.Cgroups = []CgroupCPU{{Path: "/", Version: 1, Shares: 1024, Usage: -1}}
	return o
}

func TestStarved(t *testing.T) {
	// One thread wanting all of a core: waited share w means it ran
	// (1-w) of it.
	alone := func(w float64) *Observation { return sharing(1, 100*(1-w), 100) }
	testJudge(t, []judgeCase{
		{name: "waited just below StarvedShare", o: alone(0.99 * StarvedShare), want: ComputeLoop},
		{name: "waited just above StarvedShare", o: alone(1.01 * StarvedShare), want: Starved, summary: "waited for a CPU 30% of the time"},
		// A third of a core of a core wanted: the loop beside
		// two others.
		{name: "a third of a core", o: alone(2.0 / 3), want: Starved, summary: "other tasks held CPU 1"},
		// Four threads of 11% each wanting 20%: 44% waited, 36% of a
		// core in all; no thread is hot enough for a verdict of its own.
		{name: "four threads on a loaded host", o: sharing(4, 11.2, 20), want: Starved},
		// Waited share high, but little in all: a daemon's wakeups.
		{name: "waited just below HotThreadCPU in all", o: sharing(1, 1, 1+0.99*HotThreadCPU), want: Healthy},
		{name: "waited just above HotThreadCPU in all", o: sharing(1, 1, 1+1.01*HotThreadCPU), want: Starved},
		// Its own threads on its one CPU: three threads wanting all of
		// it, waiting for each other.
		{name: "own threads fill just above 1-StarvedShare of its CPU", o: sharing(3, 1.01*(1-StarvedShare)*100/3, 100), want: ComputeLoop},
		{name: "own threads fill just below 1-StarvedShare of its CPU", o: sharing(3, 0.99*(1-StarvedShare)*100/3, 100), want: Starved},
	})
}

// The verdict names who ran on its CPUs, their containers and shares,
// and its weight.
func TestStarvedEvidence(t *testing.T) {
	vs := Judge(sharing(1, 33, 100))
	v := vs[len(vs)-1]
	text := strings.Join(v.Evidence, "\n")
	for _, want := range []string{
		"waited on a run queue 67.0% of a core",
		"it may run on CPU 1 (its affinity within its cpuset), 100% busy",
		"compute (PID 501, on the host, nice 0) 33.2% of a core, 33% of those CPUs",
		"compute (PID 502, in docker 0247046d3c16, nice -5) 33.1%",
		"go (PID 503, on the host, nice 0) 40.0% of a core on CPUs 0-1, about 20.0% on the target's, 20% of those CPUs",
		"its weight: nice 0; its cgroup / has cpu.shares 1024 (default 1024)",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("evidence lacks %q:\n%s", want, text)
		}
	}
	if v.CPU != 33 || v.CPUOf != CPUOfProcess {
		t.Errorf("cpu %v of %s", v.CPU, v.CPUOf)
	}
}

// Throttled threads count as waiting in schedstat: when the limit
// explains the wait, the verdict is throttled, not starved.
func TestStarvedNotWhenThrottled(t *testing.T) {
	o := capped(0, 0.2, 0.9, 9, 20, 20)
	o.Threads[0].Demand = 100
	vs := Judge(o)
	for _, v := range vs {
		if v.Pattern == Starved {
			t.Errorf("starved beside throttled: %s", v.Summary)
		}
	}
	if vs[len(vs)-1].Pattern != Throttled {
		t.Errorf("last verdict %s", vs[len(vs)-1].Pattern)
	}
}
