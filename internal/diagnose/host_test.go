package diagnose

import (
	"strconv"
	"strings"
	"testing"
)

// hostStat writes a /proc/stat of two CPUs whose modes moved by the
// ticks given (user, system, idle, softirq, steal per CPU) since zero.
func hostStat(running int, cpus ...[5]int) []byte {
	var b strings.Builder
	var all [5]int
	for _, c := range cpus {
		for i := range c {
			all[i] += c[i]
		}
	}
	line := func(name string, c [5]int) {
		// user nice system idle iowait irq softirq steal guest guest_nice
		b.WriteString(name + " " + strings.Join([]string{itoa(c[0]), "0", itoa(c[1]), itoa(c[2]), "0", "0", itoa(c[3]), itoa(c[4]), "0", "0"}, " ") + "\n")
	}
	line("cpu ", all)
	for i, c := range cpus {
		line("cpu"+itoa(i), c)
	}
	b.WriteString("intr 1 2 3\nctxt 5\nprocs_running " + itoa(running) + "\nprocs_blocked 0\n")
	return []byte(b.String())
}

func itoa(i int) string { return strconv.Itoa(i) }

const softirqs0 = "                    CPU0       CPU1\n          HI:          0          0\n       TIMER:        100        100\n      NET_RX:       1000         10\n"
const softirqs1 = "                    CPU0       CPU1\n          HI:          0          0\n       TIMER:        300        300\n      NET_RX:      41000         20\n"

// Over a 2 s window (200 ticks a CPU), CPU 0 spent 100 ticks in user,
// 40 in softirq, 60 idle; CPU 1 50 in user, 50 stolen, 100 idle.
func TestHostWindow(t *testing.T) {
	h0 := &HostFiles{Stat: hostStat(1, [5]int{}, [5]int{}), Softirqs: []byte(softirqs0), Loadavg: []byte("0.5 0.5 0.5 1/100 1\n")}
	h1 := &HostFiles{Stat: hostStat(4, [5]int{100, 0, 60, 40, 0}, [5]int{50, 0, 100, 0, 50}), Softirqs: []byte(softirqs1), Loadavg: []byte("2.50 1 1 4/100 9\n")}
	h, err := hostWindow(h0, h1, 2, []int{0})
	if err != nil {
		t.Fatal(err)
	}
	if h.CPUs != 2 || h.All.User != 37.5 || h.All.SoftIRQ != 10 || h.All.Steal != 12.5 || h.All.Idle != 40 || h.Runnable != 3 || h.Load1 != 2.5 {
		t.Errorf("%+v", h)
	}
	if len(h.PerCPU) != 2 || h.PerCPU[0].SoftIRQ != 20 || h.PerCPU[1].Steal != 25 {
		t.Errorf("per CPU %+v", h.PerCPU)
	}
	if len(h.Softirqs) != 2 || h.Softirqs[0].Name != "NET_RX" || h.Softirqs[0].PerSecond != 20005 || h.Softirqs[0].PerCPU[0] != 20000 || h.Softirqs[1].Name != "TIMER" {
		t.Errorf("softirqs %+v", h.Softirqs)
	}
	// 60% of 2 CPUs busy, the target used 50% of a core: 0.70 others.
	want := "host: 2 CPUs, 1.20 cores busy (60%: user 38, system 0, softirq 10, steal 12; iowait 0), 0.70 of them not the target's; 3 tasks runnable at the end, load 2.50"
	if got := hostLine(h, 50); got != want {
		t.Errorf("line\n%s\nwant\n%s", got, want)
	}
	if _, err := hostWindow(h0, &HostFiles{Stat: []byte("garbage")}, 2, nil); err == nil {
		t.Error("no error for a stat without a cpu line")
	}
	if h, err := hostWindow(nil, h1, 2, nil); h != nil || err != nil {
		t.Errorf("no first reading: %+v, %v", h, err)
	}
}
