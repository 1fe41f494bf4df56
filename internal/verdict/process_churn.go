package verdict

import (
	"fmt"
	"slices"

	"github.com/cpuwhy/cpuwhy/internal/syscalls"
)

// process_churn: a process starting short-lived children in a loop, whose
// start-up is where the CPU goes. It is judged on the process: the
// children's CPU is the process's, not a thread's.
//
// Thresholds: children reaped at ChurnRate or more, or children using
// ChurnChildrenCPU or more of a core; at least one child must have been
// started or reaped within the window.

const (
	// ChurnRate is the rate of children reaped (wait4 or waitid returning
	// one) above which starting processes is the work: a shell script's
	// loop, a health check per request. Reaped children are counted, not
	// forks: a clone without CLONE_THREAD is not told apart from a
	// thread's clone.
	ChurnRate = 20.0

	// ChurnChildrenCPU is the CPU of waited-for children (percent of one
	// core) that also makes churn a verdict at any rate: the bar of
	// HotThreadCPU, a fifth of a core, for what the children cost between
	// them.
	ChurnChildrenCPU = 20.0
)

func processChurn(o *Observation) (*Verdict, []int) {
	var forks, waits uint64
	var top *Thread
	var topN uint64
	for i := range o.Threads {
		t := &o.Threads[i]
		var n uint64
		for _, s := range t.Syscalls {
			switch {
			case slices.Contains(syscalls.ForkCalls, s.Name):
				n += s.OK
			case slices.Contains(syscalls.WaitChildCalls, s.Name):
				// A wait that returned a child reaped one; WNOHANG's
				// "none yet" returns 0.
				waits += s.OK - s.Zero
			}
		}
		forks += n
		if n > topN || top == nil && waits > 0 {
			top, topN = t, n
		}
	}
	r := float64(waits) / o.Seconds
	if top == nil || r < ChurnRate && o.Children < ChurnChildrenCPU {
		return nil, nil
	}
	v := newVerdict(ProcessChurn, top)
	v.CPU, v.CPUOf = round1(o.CPU.Total+o.Children), CPUOfProcess
	v.Summary = fmt.Sprintf("process %s starts short-lived child processes in a loop: %s children started and reaped, and their start-up is where the CPU goes", o.Name, rate(r))
	v.Evidence = []string{
		fmt.Sprintf("%s children reaped (wait4/waitid), %s fork/clone calls", rate(r), rate(float64(forks)/o.Seconds)),
		fmt.Sprintf("the children used %.1f%% of a core, the process itself %.1f%%", o.Children, o.CPU.Total),
	}
	v.Evidence = append(v.Evidence, stackLine(top)...)
	v.Advice = "do the work in-process instead of running a command each time (a library call instead of exec); keep a long-lived worker; if a health check or cron runs this, lower its frequency"
	return v, []int{top.TID}
}
