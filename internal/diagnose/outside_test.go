package diagnose

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/syscalls"
	"github.com/cpuwhy/cpuwhy/internal/syscalls/ebpf"
	"github.com/cpuwhy/cpuwhy/internal/target"
	"github.com/cpuwhy/cpuwhy/internal/verdict"
	"github.com/cpuwhy/cpuwhy/test/containertest"
	"github.com/cpuwhy/cpuwhy/test/privtest"
	"github.com/cpuwhy/cpuwhy/test/scenario"
)

// Causes outside the target's code, made for real: a CPU limit on its
// cgroup or its parent's.

// findVerdict returns the verdict of pattern p, failing the test when
// there is none.
func findVerdict(t *testing.T, r *Report, p verdict.Pattern) *verdict.Verdict {
	t.Helper()
	for i := range r.Verdicts {
		if r.Verdicts[i].Pattern == p {
			v := &r.Verdicts[i]
			t.Logf("%s: %s\n  %s\n  fix: %s", v.Pattern, v.Summary, strings.Join(v.Evidence, "\n  "), v.Advice)
			return v
		}
	}
	var got []string
	for _, v := range r.Verdicts {
		got = append(got, string(v.Pattern)+": "+v.Summary)
	}
	t.Fatalf("no %s verdict; got:\n%s", p, strings.Join(got, "\n"))
	return nil
}

// A busy poll in a cgroup capped at 0.2 of a core (cgroup v1's cpu
// controller on this hybrid host, v2's cpu.max where that has it), and
// the same with the cap on the parent of its cgroup, as a pod's: the
// kernel throttles it in most periods, and the verdict says so beside the
// busy poll. The bounds are ratios the kernel enforces, not speeds: a
// loop that never sleeps exhausts any quota in every period it runs.
func TestThrottledLive(t *testing.T) {
	for _, tt := range []struct {
		name   string
		limits []float64
		whose  string
	}{
		{"own cgroup", []float64{0.2}, "its cgroup"},
		{"parent's limit", []float64{0.2, 0}, "the parent of its cgroup"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tree := containertest.NewCPUTree(t, tt.limits...)
			cmd := scenario.Build(t, "busypoll").Start(t, nil, "1706")
			if err := tree.Join(cmd.Process.Pid); err != nil {
				t.Fatal(err)
			}
			// Other work on the machine must not keep the loop from
			// using its 20 ms in a period: its cgroups outweigh a
			// task at nice 0 256 times.
			tree.Outweigh(t)
			r := diagnoseProcess(t, cmd, "busypoll")
			v := findVerdict(t, r, verdict.Throttled)
			if !strings.Contains(v.Summary, tt.whose) || !strings.Contains(v.Summary, tree.Paths[0]) || !strings.Contains(v.Summary, "0.20 cores") {
				t.Errorf("summary %q does not name %s %s at 0.20 cores", v.Summary, tt.whose, tree.Paths[0])
			}
			var lim *verdict.CgroupCPU
			for i := range r.Cgroups {
				if r.Cgroups[i].Path == tree.Paths[0] {
					lim = &r.Cgroups[i]
				}
			}
			if lim == nil {
				t.Fatalf("no cgroup %s in %+v", tree.Paths[0], r.Cgroups)
			}
			// A loop that never sleeps uses its quota in every period
			// it gets the CPU for 20 ms of it: 85% of them here with
			// the machine otherwise idle, 65% with a load of 11 on its
			// two cores. The verdict asks 25%.
			if share := lim.Throttled / lim.Periods; share < verdict.ThrottledShare {
				t.Errorf("throttled in %.0f%% of %v periods", 100*share, lim.Periods)
			}
			// Its CPU is the limit's, give or take the accounting's
			// ticks: never far above it.
			if r.Target.CPU > 100*0.2*1.25 {
				t.Errorf("the capped target used %.1f%% of a core", r.Target.CPU)
			}
			if p := r.Verdicts[0].Pattern; p != verdict.BusyPoll {
				t.Errorf("first verdict %s, want busy_poll (the code's, before the causes outside it)", p)
			}
		})
	}
}

// pin sets the affinity of every thread of process pid to one CPU.
func pin(t *testing.T, pid, cpu int) {
	t.Helper()
	tids, err := proc.FS{}.Tasks(pid, nil)
	if err != nil {
		t.Fatal(err)
	}
	var set unix.CPUSet
	set.Set(cpu)
	for _, tid := range tids {
		if err := unix.SchedSetaffinity(tid, &set); err != nil {
			t.Fatalf("pinning %d to CPU %d: %v", tid, cpu, err)
		}
	}
}

// The busy poll sharing one core with two compute loops: it gets
// a third of the core at most and waits the rest; the verdict names the
// two loops. The bounds are shares of one core that three loops pinned to
// it split, whatever its speed.
func TestStarvedLive(t *testing.T) {
	cpus, err := proc.FS{}.AllowedCPUs(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// The first CPU: tests of other packages that pin a loop pin it to
	// the last (lockstorm's workers go round robin from the first).
	core := cpus[0]
	cmd := scenario.Build(t, "busypoll").Start(t, nil, "1708")
	pin(t, cmd.Process.Pid, core)
	var loops []int
	for range 2 {
		c := scenario.Build(t, "compute").Start(t, nil)
		pin(t, c.Process.Pid, core)
		loops = append(loops, c.Process.Pid)
	}
	r := diagnoseProcess(t, cmd, "busypoll")
	v := findVerdict(t, r, verdict.Starved)
	text := strings.Join(v.Evidence, "\n")
	for _, pid := range loops {
		if !strings.Contains(text, fmt.Sprintf("compute (PID %d, on the host", pid)) {
			t.Errorf("the evidence does not name compute loop %d:\n%s", pid, text)
		}
	}
	if !strings.Contains(v.Summary, fmt.Sprintf("CPU %d,", core)) && len(cpus) > 1 {
		t.Errorf("summary %q does not name CPU %d", v.Summary, core)
	}
	// Three loops on one core: at most about a third each (a tick of
	// accounting either way), and waiting the rest.
	if r.Target.CPU > 100.0/3+5 {
		t.Errorf("the busy poll got %.1f%% of the shared core", r.Target.CPU)
	}
	if r.Target.CPU >= verdict.BusyCPU {
		findVerdict(t, r, verdict.BusyPoll) // the code's own verdict still stands
	}
}

// A UDP flood on loopback, in a network namespace the scenario makes,
// bounded in time: the NET_RX softirqs its sends raise take a good part
// of its CPU, and the verdict says which softirq, at what rate, on which
// CPU. Pinned to one CPU, so that the softirq share is that CPU's.
func TestSoftirqLive(t *testing.T) {
	cpus, err := proc.FS{}.AllowedCPUs(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// In a cgroup that outweighs the other work on the machine: the
	// softirqs follow the packets it manages to send.
	tree := containertest.NewCPUTree(t, 0)
	tree.Outweigh(t)
	cmd := scenario.Build(t, "udpflood").Start(t, nil, "0", "20")
	if err := tree.Join(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	pin(t, cmd.Process.Pid, cpus[0])
	r := diagnoseProcess(t, cmd, "udpflood")
	v := findVerdict(t, r, verdict.Softirq)
	if !strings.Contains(v.Summary, "mostly NET_RX softirqs") {
		t.Errorf("summary %q does not name NET_RX", v.Summary)
	}
}

// A kernel thread is explained, not refused: ksoftirqd of the CPU a UDP
// flood is pinned to, diagnosed for real. Whether it is busy depends on
// how many softirqs the send path leaves to it: when it is, the verdict
// is kernel_thread with the softirqs of its CPU; when not, healthy.
func TestKernelThreadLive(t *testing.T) {
	cpus, err := proc.FS{}.AllowedCPUs(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	cpu := cpus[0]
	ksoftirqd := 0
	pids, err := proc.FS{}.PIDs()
	if err != nil {
		t.Fatal(err)
	}
	sc := proc.NewScanner(proc.FS{})
	for _, pid := range pids {
		if p, err := sc.ReadProcess(pid, false); err == nil && p.KernelThread() && p.Comm == fmt.Sprintf("ksoftirqd/%d", cpu) {
			ksoftirqd = pid
		}
	}
	if ksoftirqd == 0 {
		t.Fatalf("no ksoftirqd/%d", cpu)
	}
	flood := scenario.Build(t, "udpflood").Start(t, nil, "0", "20")
	pin(t, flood.Process.Pid, cpu)
	tg := target.Target{PID: ksoftirqd, Name: fmt.Sprintf("ksoftirqd/%d", cpu), Kernel: true}
	res, err := Run(context.Background(), tg, Options{FS: proc.FS{}, Duration: window})
	if err != nil {
		t.Fatal(err)
	}
	r := res.Report
	var text strings.Builder
	WriteText(&text, r, TextOptions{})
	t.Logf("%s", text.String())
	if len(r.Threads) != 1 || r.Threads[0].TID != ksoftirqd {
		t.Errorf("thread rows %+v, want the kernel thread itself", r.Threads)
	}
	switch v := r.Verdicts[0]; v.Pattern {
	case verdict.KernelThread:
		if !strings.Contains(strings.Join(v.Evidence, "\n"), "NET_RX") {
			t.Errorf("the softirqs of CPU %d are not named: %q", cpu, v.Evidence)
		}
	case verdict.Healthy:
		t.Logf("ksoftirqd/%d used %.1f%% of a core: the send path ran the softirqs itself", cpu, r.Target.CPU)
	default:
		t.Errorf("verdict %s on a kernel thread", v.Pattern)
	}
	if !strings.Contains(strings.Join(r.Notes, "\n"), "kernel thread makes no system calls") {
		t.Errorf("notes %q", r.Notes)
	}
}

// Four threads of lockstorm fighting over one mutex, pinned to one core:
// one verdict covering all four (their group judged as one, or the
// contenders of a lock), never four verdicts at a quarter of a core each.
// The bounds are the shares four loops on one core split, whatever its
// speed.
func TestThreadGroupLive(t *testing.T) {
	cpus, err := proc.FS{}.AllowedCPUs(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	cmd := scenario.Build(t, "lockstorm").Start(t, nil, "0", "4")
	pin(t, cmd.Process.Pid, cpus[0])
	r := diagnoseProcess(t, cmd, "lockstorm")
	var text strings.Builder
	WriteText(&text, r, TextOptions{})
	t.Logf("%s", text.String())
	var code []verdict.Verdict
	for _, v := range r.Verdicts {
		if !v.Pattern.Outside() {
			code = append(code, v)
		}
	}
	if len(code) != 1 {
		t.Fatalf("%d verdicts on the code, want one for the four workers", len(code))
	}
	v := code[0]
	switch {
	case v.CPUOf == verdict.CPUOfGroup:
		if len(v.Threads) != 4 || v.Group != "Worker" {
			t.Errorf("group %q of %d threads, want Worker ×4", v.Group, len(v.Threads))
		}
		if !strings.Contains(text.String(), "Worker ×4") {
			t.Errorf("the thread table does not show the group as one row")
		}
	case v.Pattern == verdict.LockContention && v.CPUOf == verdict.CPUOfThreads:
		t.Logf("the lock's contenders are one verdict: %s", v.Summary)
		if len(v.Threads) != 4 {
			t.Errorf("lock_contention lists %d threads, want the 4 workers", len(v.Threads))
		}
	default:
		t.Errorf("verdict %s of %s, want one on the four workers", v.Pattern, v.CPUOf)
	}
}

// Four threads of one pool (cruncher-0..3) in the same loop, pinned to
// one core: one compute_loop verdict on the group at their combined CPU,
// with every thread in its JSON and one row in the thread table.
func TestThreadGroupComputeLive(t *testing.T) {
	cpus, err := proc.FS{}.AllowedCPUs(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	cmd := scenario.Build(t, "compute").Start(t, nil, "4")
	pin(t, cmd.Process.Pid, cpus[0])
	r := diagnoseProcess(t, cmd, "compute")
	var text strings.Builder
	WriteText(&text, r, TextOptions{})
	t.Logf("%s", text.String())
	check(t, r, expect{pattern: verdict.ComputeLoop, frame: "crunch_numbers"})
	v := r.Verdicts[0]
	if v.CPUOf != verdict.CPUOfGroup || v.Group != "cruncher-#" || len(v.Threads) != 4 {
		t.Fatalf("verdict on %s %q with %d threads, want the group cruncher-# of 4", v.CPUOf, v.Group, len(v.Threads))
	}
	// Four loops on one core: together they get the core, or what
	// other work leaves of it; never more (a tick either way).
	if v.CPU > 105 || v.CPU < v.ThreadCPU {
		t.Errorf("group at %.1f%%, its busiest at %.1f%%", v.CPU, v.ThreadCPU)
	}
	if !strings.Contains(text.String(), "cruncher-# ×4") {
		t.Errorf("the thread table does not show the group as one row")
	}
	for _, v := range r.Verdicts[1:] {
		if !v.Pattern.Outside() {
			t.Errorf("a second verdict on the code: %s on %s", v.Pattern, v.Thread.Name)
		}
	}
}

// countingAccounting counts the readings of each kind.
type countingAccounting struct {
	Accounting
	ends, between atomic.Int32
}

func (a *countingAccounting) Read(pid int) (Reading, error) {
	a.ends.Add(1)
	return a.Accounting.Read(pid)
}

func (a *countingAccounting) Between(pid int) (Reading, error) {
	a.between.Add(1)
	return a.Accounting.Between(pid)
}

// As watch and agent run it (KeepExited: the target read every quarter
// second, in case it exits), a diagnosis scans the host's processes at
// the window's two ends alone, not at each reading between, and still
// names the neighbour that shared the target's core, with the CPUs and
// container read once, at the end, for those that ran over the window.
func TestNeighboursKeepExited(t *testing.T) {
	cpus, err := proc.FS{}.AllowedCPUs(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	core := cpus[0]
	cmd := scenario.Build(t, "busypoll").Start(t, nil, "1708")
	pin(t, cmd.Process.Pid, core)
	loop := scenario.Build(t, "compute").Start(t, nil)
	pin(t, loop.Process.Pid, core)
	acc := &countingAccounting{Accounting: &procAccounting{fs: proc.FS{}, scanner: proc.NewScanner(proc.FS{})}}
	res, err := Run(context.Background(), target.Target{PID: cmd.Process.Pid, Name: "busypoll"}, Options{
		FS: proc.FS{}, Duration: window, KeepExited: true, Accounting: acc,
		Tracers: []syscalls.Candidate{{Mechanism: syscalls.EBPF, New: func() syscalls.Tracer { return ebpf.New() }}},
	})
	if errors.Is(err, syscalls.ErrNotSupported) || errors.Is(err, os.ErrPermission) {
		privtest.Require(t, fmt.Sprintf("diagnosis needs BPF, perf events and ptrace: %v", err))
	}
	if err != nil {
		t.Fatal(err)
	}
	// A 2 s window read every 250 ms: 7 readings between.
	if ends, between := acc.ends.Load(), acc.between.Load(); ends != 2 || between < 2 {
		t.Errorf("%d readings at the ends and %d between; want 2 and more than one", ends, between)
	}
	var found *verdict.Neighbour
	for i, n := range res.Report.Neighbours {
		if n.PID == loop.Process.Pid {
			found = &res.Report.Neighbours[i]
		}
	}
	if found == nil {
		t.Fatalf("the compute loop %d on the target's core is not a neighbour: %+v", loop.Process.Pid, res.Report.Neighbours)
	}
	// Two loops on one core: the neighbour had about half of it, less
	// what other work on the machine took of that core; a tenth of
	// that is enough to tell it was measured over the window.
	if found.CPU < 5 || !slices.Equal(found.Allowed, []int{core}) {
		t.Errorf("the compute loop: %.1f%% of a core on CPUs %v; want at least 5%% on CPU %d", found.CPU, found.Allowed, core)
	}
}

// killingAccounting kills the target after its second reading during
// the window.
type killingAccounting struct {
	Accounting
	target  *exec.Cmd
	between atomic.Int32
}

func (a *killingAccounting) Between(pid int) (Reading, error) {
	r, err := a.Accounting.Between(pid)
	if a.between.Add(1) == 2 {
		a.target.Process.Kill()
		a.target.Wait()
	}
	return r, err
}

// A target that exits mid-window, diagnosed as watch and agent do
// (KeepExited), is judged on what was seen until its last reading, and
// the neighbour that shared its core is still named: the host's
// processes read at the window's end are compared with those of its
// start over their own interval.
func TestNeighboursTargetExits(t *testing.T) {
	cpus, err := proc.FS{}.AllowedCPUs(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	core := cpus[0]
	spin := exec.Command("sh", "-c", "while :; do :; done")
	if err := spin.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { spin.Process.Kill() })
	pin(t, spin.Process.Pid, core)
	loop := scenario.Build(t, "compute").Start(t, nil)
	pin(t, loop.Process.Pid, core)
	acc := &killingAccounting{Accounting: &procAccounting{fs: proc.FS{}, scanner: proc.NewScanner(proc.FS{})}, target: spin}
	res, err := Run(context.Background(), target.Target{PID: spin.Process.Pid, Name: "sh"}, Options{
		FS: proc.FS{}, Duration: window, KeepExited: true, Accounting: acc,
		Tracers: []syscalls.Candidate{{Mechanism: syscalls.EBPF, New: func() syscalls.Tracer { return ebpf.New() }}},
	})
	if errors.Is(err, syscalls.ErrNotSupported) || errors.Is(err, os.ErrPermission) {
		privtest.Require(t, fmt.Sprintf("diagnosis needs BPF, perf events and ptrace: %v", err))
	}
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(res.Report.Notes, "\n"), "the process exited during the window") {
		t.Errorf("no note of the exit: %q", res.Report.Notes)
	}
	var found *verdict.Neighbour
	for i, n := range res.Report.Neighbours {
		if n.PID == loop.Process.Pid {
			found = &res.Report.Neighbours[i]
		}
	}
	if found == nil || found.CPU < 5 || !slices.Equal(found.Allowed, []int{core}) {
		t.Errorf("the compute loop %d on the target's core: %+v; want it named, at least 5%% of a core on CPU %d (neighbours %+v)", loop.Process.Pid, found, core, res.Report.Neighbours)
	}
}
