package verdict

import (
	"fmt"
	"strings"
	"testing"
)

// pool is n compute threads named by name(i), each at c% of a core, all
// sampled in the same loop.
func pool(n int, c float64, name func(int) string) *Observation {
	var ts []Thread
	for i := 0; i < n; i++ {
		th := thread(300+i, name(i), cpu(c, 0))
		th.Stacks = []Stack{{Frames: []string{"make_event", "worker", "start_thread"}, Count: 60}, {Frames: []string{"pthread_mutex_lock", "update_shared_stats", "worker", "start_thread"}, Count: 30}}
		ts = append(ts, th)
	}
	return obs(ts...)
}

func TestGroups(t *testing.T) {
	same := func(string) func(int) string { return func(int) string { return "Worker" } }("")
	for _, tt := range []struct {
		name    string
		o       *Observation
		verdict int    // how many verdicts on the code
		pattern string // the group's, when one
		cpu     float64
	}{
		{name: "four workers on one core", o: pool(4, 25, same), verdict: 1, pattern: "Worker", cpu: 100},
		{name: "shard-0..3", o: pool(4, 25, func(i int) string { return fmt.Sprintf("shard-%d", i) }), verdict: 1, pattern: "shard-#", cpu: 100},
		{name: "pool-1-thread-N", o: pool(3, 30, func(i int) string { return fmt.Sprintf("pool-1-thread-%d", i+1) }), verdict: 1, pattern: "pool-#-thread-#", cpu: 90},
		// Each below HotThreadCPU, together a compute loop: before
		// groups, healthy.
		{name: "four cool workers", o: pool(4, 15, same), verdict: 1, pattern: "Worker", cpu: 60},
		// Names that differ other than by digits are not a group.
		{name: "different names", o: pool(2, 60, func(i int) string { return []string{"reader", "writer"}[i] }), verdict: 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var vs []Verdict
			for _, v := range Judge(tt.o) {
				if !v.Pattern.Outside() {
					vs = append(vs, v)
				}
			}
			if len(vs) != tt.verdict {
				t.Fatalf("%d verdicts, want %d: %+v", len(vs), tt.verdict, vs)
			}
			v := vs[0]
			if tt.pattern == "" {
				if v.CPUOf == CPUOfGroup || len(v.Threads) > 0 {
					t.Errorf("grouped: %+v", v)
				}
				return
			}
			if v.Pattern != ComputeLoop || v.CPUOf != CPUOfGroup || v.CPU != tt.cpu || len(v.Threads) != len(tt.o.Threads) || v.Thread != v.Threads[0] {
				t.Errorf("%s, %v%% of %s, threads %v (busiest %v); want compute_loop of the group at %v%%", v.Pattern, v.CPU, v.CPUOf, v.Threads, v.Thread, tt.cpu)
			}
			text := v.Summary + "\n" + strings.Join(v.Evidence, "\n")
			for _, want := range []string{fmt.Sprintf("thread group %s (%d threads)", tt.pattern, len(tt.o.Threads)), fmt.Sprintf("%d threads named %s with the same hot stack, judged as one", len(tt.o.Threads), tt.pattern)} {
				if !strings.Contains(text, want) {
					t.Errorf("lacks %q:\n%s", want, text)
				}
			}
		})
	}
}

// groupStacks: the hottest stack of one thread must be among the first
// groupStacks of the other's.
func TestGroupStacks(t *testing.T) {
	at := func(pos int) *Observation {
		o := pool(2, 40, func(int) string { return "Worker" })
		other := &o.Threads[1]
		other.Stacks = nil
		for i := 0; i < pos; i++ {
			other.Stacks = append(other.Stacks, Stack{Frames: []string{fmt.Sprintf("f%d", i), "worker", "start_thread"}, Count: 50 - i})
		}
		other.Stacks = append(other.Stacks, Stack{Frames: []string{"make_event", "worker", "start_thread"}, Count: 10})
		// The first thread samples the other's hottest too.
		o.Threads[0].Stacks = append(o.Threads[0].Stacks, Stack{Frames: []string{"f0", "worker", "start_thread"}, Count: 5})
		return o
	}
	if g := Groups(at(groupStacks-1), nil); len(g) != 1 {
		t.Errorf("hottest at place %d of the other's: groups %+v, want one", groupStacks, g)
	}
	if g := Groups(at(groupStacks), nil); len(g) != 0 {
		t.Errorf("hottest at place %d of the other's: groups %+v, want none", groupStacks+1, g)
	}
	// A thread never sampled is not grouped by its name alone.
	o := pool(2, 40, func(int) string { return "Worker" })
	o.Threads[1].Samples, o.Threads[1].Stacks = 0, nil
	if g := Groups(o, nil); len(g) != 0 {
		t.Errorf("unsampled thread grouped: %+v", g)
	}
}

func TestNameKey(t *testing.T) {
	for in, want := range map[string]string{"shard-0": "shard-#", "pool-12-thread-345": "pool-#-thread-#", "vpnserver": "vpnserver", "x86_64": "x#_#", "": ""} {
		if got := nameKey(in); got != want {
			t.Errorf("nameKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// A group's syscalls are summed: four threads each failing recvfrom at a
// quarter of the rate busy_poll asks are one busy poll.
func TestGroupSyscalls(t *testing.T) {
	var ts []Thread
	for i := 0; i < 4; i++ {
		th := thread(400+i, "poller-"+fmt.Sprint(i), cpu(10, 15), call("recvfrom", LoopRate/4*1.1, udp, map[string]float64{"EAGAIN": 1}))
		th.Stacks = []Stack{{Frames: []string{"recvfrom", "poll_loop", "start_thread"}, Count: 90}}
		ts = append(ts, th)
	}
	v := Judge(obs(ts...))[0]
	if v.Pattern != BusyPoll || len(v.Threads) != 4 || v.CPU != 100 || v.Errno == nil {
		t.Errorf("%s at %v with %d threads", v.Pattern, v.CPU, len(v.Threads))
	}
}
