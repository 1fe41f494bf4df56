package verdict

import (
	"strings"
	"testing"
)

// capped is a busy-polling process in a cgroup whose limit, limit cores
// at the given depth, throttled it in share of rate periods a second;
// the cgroup used usage% of a core.
func capped(depth int, limit, share, rate, usage float64, c float64) *Observation {
	o := obs(thread(7, "NatThreadMain", cpu(c/2, c/2), call("recvfrom", 1e5, udp, map[string]float64{"EAGAIN": 1})))
	for d := 0; d <= depth+1; d++ {
		cg := CgroupCPU{Path: strings.Repeat("/p", depth+1-d), Depth: d, Version: 1, PeriodMs: 100, Usage: usage}
		if cg.Path == "" {
			cg.Path = "/"
		}
		if d == depth {
			cg.Limit = limit
			cg.Periods = rate / share * secs
			cg.Throttled = rate * secs
			cg.ThrottledSeconds = 0.8 * secs
		}
		o.Cgroups = append(o.Cgroups, cg)
	}
	return o
}

func TestThrottled(t *testing.T) {
	testJudge(t, []judgeCase{
		{name: "share just below ThrottledShare", o: capped(0, 0.2, 0.99*ThrottledShare, 5, 20, 20), want: BusyPoll, tid: 7},
		{name: "share just above ThrottledShare", o: capped(0, 0.2, 1.01*ThrottledShare, 5, 20, 20), want: Throttled, tid: 7, summary: "its cgroup /p, 0.20 cores"},
		{name: "rate just below ThrottledRate", o: capped(0, 0.2, 0.9, 0.99*ThrottledRate, 20, 20), want: BusyPoll},
		{name: "rate just above ThrottledRate", o: capped(0, 0.2, 0.9, 1.01*ThrottledRate, 20, 20), want: Throttled},
		// The limit on the parent, as a pod's.
		{name: "limit on the parent", o: capped(1, 0.5, 0.9, 9, 50, 50), want: Throttled, summary: "the parent of its cgroup, /p"},
		// Capped at 5% of a core, below BusyCPU: judged all the same.
		{name: "below BusyCPU", o: capped(0, 0.05, 0.9, 9, 5, 5), want: Throttled},
		{name: "below BusyCPU, not throttled", o: capped(0, 0.05, 0.1, 9, 5, 5), want: Healthy},
		{name: "no limit", o: capped(0, 0, 0.9, 9, 20, 20), want: BusyPoll},
	})
}

// Usage just under BurstUsage of the limit says bursts; just over, not.
func TestThrottledBursts(t *testing.T) {
	for _, tt := range []struct {
		usage float64
		burst bool
	}{{0.99 * BurstUsage * 40, true}, {1.01 * BurstUsage * 40, false}} {
		vs := Judge(capped(0, 0.4, 0.5, 5, tt.usage, 30))
		v := vs[len(vs)-1]
		text := strings.Join(v.Evidence, "\n")
		if v.Pattern != Throttled || strings.Contains(text, "in bursts") != tt.burst || strings.Contains(v.Advice, "cpu.max.burst") != tt.burst {
			t.Errorf("usage %.1f: %s, bursts said %v, want %v\n%s", tt.usage, v.Pattern, strings.Contains(text, "in bursts"), tt.burst, text)
		}
		// The busy poll is still judged, first: the loop is the code's
		// verdict, the limit a cause outside it.
		if len(vs) != 2 || vs[0].Pattern != BusyPoll {
			t.Errorf("verdicts %+v, want busy_poll then throttled", vs)
		}
	}
	o := capped(0, 0.4, 0.5, 5, -1, 30)
	if vs := Judge(o); !strings.Contains(strings.Join(vs[1].Evidence, "\n"), "not accounted") {
		t.Errorf("unknown usage: %q", vs[1].Evidence)
	}
}

// A throttled thread counts as waiting for a CPU in schedstat: the
// verdict says that the wait the code's verdict shows is the throttling,
// when there is such a wait.
func TestThrottledWaitLine(t *testing.T) {
	for _, d := range []float64{0, 100} {
		o := capped(0, 0.2, 0.9, 9, 20, 20)
		o.Threads[0].Demand = d
		vs := Judge(o)
		said := strings.Contains(strings.Join(vs[len(vs)-1].Evidence, "\n"), "is mostly this")
		if said != (d == 100) {
			t.Errorf("demand %v: wait line said %v", d, said)
		}
	}
}
