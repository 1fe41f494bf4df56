package diagnose

import (
	"strings"
	"syscall"
	"testing"

	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/verdict"
	"github.com/cpuwhy/cpuwhy/test/containertest"
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
			// using its 20 ms in a period: at nice -15 it outweighs
			// tasks at 0 thirty times.
			renice(t, cmd.Process.Pid, -15)
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
			if p := r.Verdicts[0].Pattern; p != verdict.Throttled {
				t.Errorf("first verdict %s, want throttled (the process's CPU, the largest)", p)
			}
		})
	}
}

// renice sets the nice value of every thread of process pid.
func renice(t *testing.T, pid, nice int) {
	t.Helper()
	tids, err := proc.FS{}.Tasks(pid, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tid := range tids {
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice); err != nil {
			t.Fatalf("renice %d: %v", tid, err)
		}
	}
}
