package verdict

import (
	"strings"
	"testing"
)

// onVPS is a compute loop at c% of a core on a 2-CPU guest whose CPUs
// each lost stolen% of their time, with softirq% in softirqs.
func onVPS(c, stolen, soft float64) *Observation {
	o := obs(thread(3, "cruncher", cpu(c, 0)))
	o.Host = &Host{CPUs: 2, All: HostModes{CPU: -1, User: 50, Steal: stolen, SoftIRQ: soft}}
	for i := 0; i < 2; i++ {
		o.Host.PerCPU = append(o.Host.PerCPU, HostModes{CPU: i, User: 50, Steal: stolen, SoftIRQ: soft, Idle: 50 - stolen - soft})
	}
	o.Host.Softirqs = []SoftirqRate{
		{Name: "NET_RX", PerSecond: 410000, PerCPU: []float64{400000, 10000}, CPUs: []int{0, 1}},
		{Name: "TIMER", PerSecond: 500, PerCPU: []float64{250, 250}, CPUs: []int{0, 1}},
	}
	o.KernelThreads = []Neighbour{{PID: 14, Name: "ksoftirqd/0", CPU: 35, Kernel: true}}
	return o
}

func TestSteal(t *testing.T) {
	testJudge(t, []judgeCase{
		{name: "steal just below StealShare", o: onVPS(60, 0.99*100*StealShare, 0), want: ComputeLoop},
		{name: "steal just above StealShare", o: onVPS(60, 1.01*100*StealShare, 0), want: Steal, summary: "the hypervisor took 10%"},
		// Steal that does not touch a process wanting little.
		{name: "wants just below HotThreadCPU", o: onVPS(0.99*HotThreadCPU, 30, 0), want: Healthy},
		{name: "wants just above HotThreadCPU", o: onVPS(1.01*HotThreadCPU, 30, 0), want: Steal},
	})
	o := onVPS(60, 15, 0)
	o.Host.Allowed = []int{1}
	o.Host.PerCPU[0].Steal = 0
	vs := Judge(o)
	if v := vs[len(vs)-1]; v.Pattern != Steal || !strings.Contains(v.Evidence[0], "CPU 1 15%") || strings.Contains(v.Evidence[0], "CPU 0") {
		t.Errorf("steal on its CPU only: %s %q", v.Pattern, v.Evidence)
	}
	o.Host.Allowed = []int{0}
	for _, v := range Judge(o) {
		if v.Pattern == Steal {
			t.Errorf("steal on a CPU the process may not use: %q", v.Evidence)
		}
	}
}

func TestSoftirq(t *testing.T) {
	testJudge(t, []judgeCase{
		{name: "softirq just below SoftirqShare", o: onVPS(60, 0, 0.99*100*SoftirqShare), want: ComputeLoop},
		{name: "softirq just above SoftirqShare", o: onVPS(60, 0, 1.01*100*SoftirqShare), want: Softirq, summary: "mostly NET_RX softirqs"},
		{name: "wants just below HotThreadCPU", o: onVPS(0.99*HotThreadCPU, 0, 40), want: Healthy},
		{name: "wants just above HotThreadCPU", o: onVPS(1.01*HotThreadCPU, 0, 40), want: Softirq},
	})
	vs := Judge(onVPS(60, 0, 40))
	v := vs[len(vs)-1]
	text := strings.Join(v.Evidence, "\n")
	for _, want := range []string{"CPU 0 40% (softirq 40, irq 0)", "NET_RX 410k/s (CPU 0 400k/s)", "ksoftirqd/0 (PID 14) 35.0% of a core"} {
		if !strings.Contains(text, want) {
			t.Errorf("evidence lacks %q:\n%s", want, text)
		}
	}
	if !strings.Contains(v.Advice, "RPS") {
		t.Errorf("advice for NET_RX: %q", v.Advice)
	}
}
