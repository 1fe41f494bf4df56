package verdict

import (
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// The registry lists every pattern, spin_yield twice (its sched_yield
// loop and its user-space spin are told apart by different evidence at
// different places in the order), lock_contention twice (several threads
// of the process; one thread waking waiters that are not there), every
// other exactly once.
func TestRulesListEveryPattern(t *testing.T) {
	count := map[Pattern]int{}
	for _, r := range rules {
		if !slices.Contains(Patterns, r.pattern) {
			t.Errorf("rule for %q, which is not in Patterns", r.pattern)
		}
		count[r.pattern]++
	}
	for _, p := range Patterns {
		want := 1
		if p == SpinYield || p == LockContention {
			want = 2
		}
		if count[p] != want {
			t.Errorf("%s has %d rules in the registry, want %d", p, count[p], want)
		}
	}
}

// Each rule has the function its scope calls, and only that one.
func TestRulesScope(t *testing.T) {
	for _, r := range rules {
		perThread := r.scope == perThread
		if (r.thread != nil) != perThread || (r.process != nil) == perThread || r.scope == outside && r.pattern == Healthy {
			t.Errorf("%s, judged %s, has a thread function: %v, a process function: %v", r.pattern, r.scope, r.thread != nil, r.process != nil)
		}
	}
}

// The order of evaluation decides which rule names a thread that two
// would fit: it changes only on purpose.
func TestRulesOrder(t *testing.T) {
	var got []string
	for _, r := range rules {
		var f any = r.process
		if r.scope == perThread {
			f = r.thread
		}
		name := runtime.FuncForPC(reflect.ValueOf(f).Pointer()).Name()
		got = append(got, string(r.pattern)+" "+r.scope.String()+" "+name[strings.LastIndex(name, ".")+1:])
	}
	want := []string{
		"throttled outside throttled",
		"starved outside starved",
		"steal outside steal",
		"softirq outside softirq",
		"kernel_thread per process kernelThread",
		"gc_pressure per process gcPressure",
		"jit_compilation per process jitCompilation",
		"process_churn per process processChurn",
		"thread_churn per process threadChurn",
		"gil_contention per process gilContention",
		"lock_contention per process lockContention",
		"error_loop per thread errorLoop",
		"busy_poll per thread busyPoll",
		"lock_contention per thread fruitlessWake",
		"zero_timeout_poll per thread zeroTimeoutPoll",
		"spin_yield per thread yieldLoop",
		"timer_storm per thread timerStorm",
		"write_storm per thread writeStorm",
		"kernel_bound per thread kernelBound",
		"spin_yield per thread userSpin",
		"compute_loop per thread computeLoop",
		"healthy otherwise healthy",
	}
	if !slices.Equal(got, want) {
		t.Errorf("rules in order:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// HotThreadCPU: a thread's own patterns are looked for only when it wants
// a fifth of a core (its CPU, or its demand when it gets less).
func TestHotThread(t *testing.T) {
	polling := func(c, d float64) *Observation {
		return obs(demand(thread(7, "NatThreadMain", cpu(0.4*c, 0.6*c), call("recvfrom", 1e5, udp, map[string]float64{"EAGAIN": 1})), d))
	}
	testJudge(t, []judgeCase{
		{name: "CPU just below HotThreadCPU", o: polling(0.99*HotThreadCPU, 0), want: Healthy, summary: "is busy doing real work"},
		{name: "CPU just above HotThreadCPU", o: polling(1.01*HotThreadCPU, 0), want: BusyPoll, tid: 7},
		{name: "demand just below HotThreadCPU", o: polling(12, 0.99*HotThreadCPU), want: Healthy, summary: "is busy doing real work"},
		{name: "demand just above HotThreadCPU", o: polling(12, 1.01*HotThreadCPU), want: BusyPoll, tid: 7},
	})
}

// Patterns of several threads each get their verdict, the hottest first.
func TestJudgeSeveral(t *testing.T) {
	o := obs(
		thread(1, "main", cpu(1, 1)),
		thread(2, "cruncher", cpu(60, 0)),
		thread(3, "NatThreadMain", cpu(40, 59), call("recvfrom", 1e6, "udp", map[string]float64{"EAGAIN": 1})),
	)
	vs := Judge(o)
	var got []string
	for _, v := range vs {
		got = append(got, string(v.Pattern)+"/"+v.Thread.Name)
	}
	if want := []string{"busy_poll/NatThreadMain", "compute_loop/cruncher"}; !slices.Equal(got, want) {
		t.Errorf("verdicts %v, want %v", got, want)
	}
}
