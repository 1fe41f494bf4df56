package verdict

import (
	"math"
	"strings"
	"testing"

	"github.com/cpuwhy/cpuwhy/internal/syscalls"
)

// threadPerRequest is a server's main thread starting a thread per
// request, ended threads a second, over a window of 100 s (so that rates
// 1% apart are told apart by counts), the ended threads using c of a core
// between them and handing the GIL over by futex.
func threadPerRequest(ended, c float64) *Observation {
	const window = 100
	n := uint64(math.Round(ended * window))
	main := thread(1, "python3", cpu(8, 15),
		syscalls.Syscall{Name: "clone3", Count: n, OK: n, Rate: ended},
		call("accept4", ended, "tcp 127.0.0.1:8000", map[string]float64{"ok": 1}),
		call("futex", 30*ended, "", map[string]float64{"ok": 0.3, "zero": 0.7}))
	exited := thread(0, "(exited threads)", cpu(0.4*c, 0.6*c),
		syscalls.Syscall{Name: "clone3", Count: n, OK: n, Zero: n, Rate: ended},
		call("futex", 40*ended, "", map[string]float64{"ok": 0.4, "zero": 0.6}),
		call("recvfrom", 2*ended, "", map[string]float64{"ok": 1}),
		call("sendto", 2*ended, "", map[string]float64{"ok": 1}))
	exited.Exited = int(n)
	o := obs(main, exited)
	o.Seconds = window
	o.ThreadsAlive = 3
	return o
}

func TestThreadChurn(t *testing.T) {
	testJudge(t, []judgeCase{
		{name: "a thread per request", o: threadPerRequest(200, 90), want: ThreadChurn, tid: 1, syscall: "clone3"},
		// The ended threads are not contenders of a lock, whatever
		// their futex calls.
		{name: "a few threads ended", o: threadPerRequest(5, 90), want: Healthy},

		{name: "threads ended just below ThreadChurnRate", o: threadPerRequest(0.99*ThreadChurnRate, 90), want: Healthy},
		{name: "threads ended just above ThreadChurnRate", o: threadPerRequest(1.01*ThreadChurnRate, 90), want: ThreadChurn, tid: 1},
		{name: "ended threads just below HotThreadCPU", o: threadPerRequest(200, 0.99*HotThreadCPU), want: Healthy},
		{name: "ended threads just above HotThreadCPU", o: threadPerRequest(200, 1.01*HotThreadCPU), want: ThreadChurn, tid: 1},
	})
}

// Calls the tracer could not count are said in every verdict, with what
// they affect.
func TestDroppedSaid(t *testing.T) {
	for _, o := range []*Observation{threadPerRequest(200, 90), obs(thread(1, "t", cpu(30, 10)))} {
		o.Dropped = 1000
		for _, v := range Judge(o) {
			if last := v.Evidence[len(v.Evidence)-1]; !strings.Contains(last, "1000 calls were not counted") || !strings.Contains(last, "lower bound") {
				t.Errorf("%s: last evidence %q, want the calls not counted and what they affect", v.Pattern, last)
			}
		}
	}
}

// Counts sampled in slices of the window are said in every verdict, and
// the rules judge their scaled rates as they judge exact ones: the seed's
// poll is busy_poll either way. A count of distinct things seen (the
// threads that ended) is not claimed exact.
func TestSampledCountsSaid(t *testing.T) {
	sampled := &syscalls.Counting{Sampled: true, ProbeRate: 3e6, Slices: 15, Counted: 0.25, Window: 3, Scale: 12}
	for _, c := range []struct {
		o    *Observation
		want Pattern
	}{
		{threadPerRequest(200, 90), ThreadChurn},
		{obs(thread(7, "NatThreadMain", cpu(40, 59.5), call("recvfrom", 1e6, udp, map[string]float64{"EAGAIN": 1}))), BusyPoll},
		{obs(thread(1, "t", cpu(30, 10))), Healthy},
	} {
		c.o.Counting = sampled
		vs := Judge(c.o)
		if len(vs) == 0 || vs[0].Pattern != c.want {
			t.Errorf("sampled counts: %+v, want %s first", vs, c.want)
			continue
		}
		for _, v := range vs {
			if last := v.Evidence[len(v.Evidence)-1]; !strings.Contains(last, "counted in 15 slices, 8.3% of the window") || !strings.Contains(last, "estimate") || !strings.Contains(last, "--exact") {
				t.Errorf("%s: last evidence %q, want how the counts were sampled and what that affects", v.Pattern, last)
			}
		}
		if c.want == ThreadChurn && !strings.HasPrefix(vs[0].Evidence[0], "at least 20000 threads ended") {
			t.Errorf("thread_churn on sampled counts: %q, want the threads ended as a lower bound", vs[0].Evidence[0])
		}
		c.o.Counting = &syscalls.Counting{ProbeRate: 1000}
		for _, v := range Judge(c.o) {
			for _, e := range v.Evidence {
				if strings.Contains(e, "slices") || strings.HasPrefix(e, "at least") {
					t.Errorf("%s on exact counts: %q", v.Pattern, e)
				}
			}
		}
	}
}
