package verdict

import (
	"strings"
	"testing"
)

// kthread is kernel thread name at c% of a core, all system time, its
// samples in the kernel functions given, on the host of onVPS with NET_RX
// softirqs on CPU 0.
func kthread(name string, c float64, kernel ...string) *Observation {
	th := thread(14, name, cpu(0, c))
	th.Stacks = []Stack{{Kernel: kernel, Count: 90}, {Kernel: []string{"schedule"}, Count: 10}}
	o := obs(th)
	o.Name, o.Kernel, o.NoSyscalls = name, true, true
	o.Host = onVPS(0, 0, 30).Host
	return o
}

func TestKernelThread(t *testing.T) {
	testJudge(t, []judgeCase{
		{name: "ksoftirqd just above BusyCPU", o: kthread("ksoftirqd/0", 1.01*BusyCPU, "net_rx_action", "handle_softirqs", "run_ksoftirqd"), want: KernelThread, tid: 14, summary: "ksoftirqd/0 is a kernel thread, not a program: it runs the softirqs"},
		{name: "ksoftirqd just below BusyCPU", o: kthread("ksoftirqd/0", 0.99*BusyCPU, "net_rx_action"), want: Healthy},
		{name: "kworker", o: kthread("kworker/1:2-events", 60, "acpi_os_execute_deferred"), want: KernelThread, summary: "workqueues"},
		{name: "unknown kernel thread", o: kthread("zfs_iput", 60, "zap_lookup"), want: KernelThread, summary: "on behalf of the whole machine"},
	})
	v := Judge(kthread("ksoftirqd/0", 45, "net_rx_action", "handle_softirqs"))[0]
	text := strings.Join(v.Evidence, "\n")
	for _, want := range []string{"its hottest kernel functions: net_rx_action 90%, schedule 10%", "softirqs on CPU 0 over the window: NET_RX 400k/s, TIMER 250/s", "CPU 0 spent 30% of its time in softirqs"} {
		if !strings.Contains(text, want) {
			t.Errorf("evidence lacks %q:\n%s", want, text)
		}
	}
	if len(v.Stack) == 0 || v.Stack[0] != "net_rx_action" {
		t.Errorf("stack %q, want the hottest kernel stack", v.Stack)
	}
	// A program that names itself like a kernel thread is not one.
	o := kthread("ksoftirqd/0", 60, "x")
	o.Kernel = false
	if v := Judge(o)[0]; v.Pattern == KernelThread {
		t.Errorf("a user process named ksoftirqd/0 judged a kernel thread")
	}
}

// On a kernel thread, the softirqs of its CPU are in its own verdict, not
// in a softirq verdict beside it.
func TestKernelThreadNoSoftirqVerdict(t *testing.T) {
	for _, v := range Judge(kthread("ksoftirqd/0", 45, "net_rx_action")) {
		if v.Pattern == Softirq {
			t.Errorf("softirq verdict on a kernel thread: %s", v.Summary)
		}
	}
}
