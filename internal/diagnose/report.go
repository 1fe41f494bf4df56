package diagnose

import (
	"cmp"
	"slices"

	"github.com/cpuwhy/cpuwhy/internal/container"
	"github.com/cpuwhy/cpuwhy/internal/cpuprofile"
	"github.com/cpuwhy/cpuwhy/internal/syscalls"
	"github.com/cpuwhy/cpuwhy/internal/target"
	"github.com/cpuwhy/cpuwhy/internal/verdict"
)

// Report is a diagnosis for people (WriteText) and scripts (WriteJSON).
// Its JSON form is read by other tooling: fields may be added, never
// renamed.
type Report struct {
	Target  Target         `json:"target"`
	Window  float64        `json:"window_s"`
	Threads []ThreadReport `json:"threads"` // most CPU first, at most maxThreads (100)
	// ThreadCount is how many threads were seen in the window: more
	// than len(Threads) when the list was cut at maxThreads.
	ThreadCount int               `json:"thread_count"`
	Verdicts    []verdict.Verdict `json:"verdicts"`
	// Syscalls are the process's syscalls over the window, hottest first.
	Syscalls []syscalls.Syscall `json:"syscalls"`
	// Missing lists the modules without symbols and how to get them.
	Missing []string `json:"missing_symbols,omitempty"`
	Cpuwhy  Cost     `json:"cpuwhy"`
	Notes   []string `json:"notes,omitempty"`
	// Execs are the execs the process ran during the window: Target
	// names the program it runs at the end.
	Execs []cpuprofile.Exec `json:"execs,omitempty"`
	// Host is the host's CPU by mode over the window and its run queue,
	// so that a reader knows whether the target was alone; absent when
	// the host's files could not be read.
	Host *verdict.Host `json:"host,omitempty"`
	// Cgroups are the target's cgroup with the CPU controller and its
	// ancestors over the window, its own first: limits, throttling,
	// usage and weight.
	Cgroups []verdict.CgroupCPU `json:"cgroups,omitempty"`
	// Neighbours are the busiest other processes that may run on the
	// target's CPUs, over the window.
	Neighbours []verdict.Neighbour `json:"neighbours,omitempty"`
	// KernelThreads are the host's busiest kernel threads over the
	// window.
	KernelThreads []verdict.Neighbour `json:"kernel_threads,omitempty"`
}

// Target is the diagnosed process.
type Target struct {
	PID       int             `json:"pid"`
	NsPID     int             `json:"ns_pid"`
	Name      string          `json:"name"`
	Cmdline   string          `json:"cmdline,omitempty"`
	Container *container.Info `json:"container"` // null on the host
	CPU       float64         `json:"cpu"`       // percent of one core
	User      float64         `json:"user"`
	System    float64         `json:"system"`
	Children  float64         `json:"children_cpu"` // of children waited for in the window
	// Exited is the part of CPU used by threads that exited during the
	// window: CPU is the sum of the threads' rows and this.
	Exited float64 `json:"exited_threads_cpu,omitempty"`
	// Picked says why this process when the user named none.
	Picked *target.Pick `json:"picked,omitempty"`
}

// ThreadReport is one thread over the window.
type ThreadReport struct {
	TID  int    `json:"tid"` // 0 for the row of exited threads
	Name string `json:"name"`
	// Exited, when not 0, says the row is that many threads that ended
	// during the window, merged: their CPU (the process's less its live
	// threads'), their calls and samples.
	Exited int `json:"exited_threads,omitempty"`
	// Group is the name pattern of the thread group a verdict judged
	// this thread in ("shard-#"); the text report shows a group as one
	// row.
	Group       string   `json:"group,omitempty"`
	CPU         float64  `json:"cpu"`
	User        float64  `json:"user"`
	System      float64  `json:"system"`
	Demand      float64  `json:"runnable"` // percent of the window on or waiting for a CPU
	SyscallRate float64  `json:"syscalls_per_s"`
	Samples     int      `json:"samples"`
	Stack       []string `json:"stack,omitempty"` // hottest user stack, innermost first
	// Syscalls are its most frequent syscalls (at most three).
	Syscalls []syscalls.Syscall `json:"syscalls,omitempty"`
}

// Cost is what the diagnosis cost.
type Cost struct {
	Elapsed float64 `json:"elapsed_s"` // from the start of the diagnosis to the verdict
	// CPU is cpuwhy's own CPU time over Elapsed: loading the BPF
	// programs, the window, unwinding and naming the stacks. It is the
	// process's CPU (RUSAGE_SELF: every thread, the Go runtime's
	// garbage collection included), less what cpuwhy watch and agent
	// measured their other work to use meanwhile (Options.OtherCPU: the
	// scans, the HTTP server); the garbage collection that other work
	// causes is not told apart, and stays in.
	CPU       float64            `json:"cpu_s"`
	CPUShare  float64            `json:"cpu_percent"` // CPU over Elapsed, in percent of one core
	Mechanism syscalls.Mechanism `json:"mechanism,omitempty"`
	Samples   int                `json:"samples"`
	// Counting says how the syscalls were counted: every call, or in
	// slices of the window (a target making hundreds of thousands of
	// calls a second; syscalls.Counting); nil with no syscall profile.
	Counting *syscalls.Counting `json:"counting,omitempty"`
}

// maxThreads bounds the threads a report lists.
const maxThreads = 100

func threadReport(t *verdict.Thread, seconds float64) ThreadReport {
	r := ThreadReport{TID: t.TID, Name: t.Name, Exited: t.Exited, CPU: round1(t.CPU.Total), User: round1(t.CPU.User), System: round1(t.CPU.System), Demand: t.Demand, Samples: t.Samples}
	var calls uint64
	for _, s := range t.Syscalls {
		calls += s.Count
	}
	if seconds > 0 {
		r.SyscallRate = round1(float64(calls) / seconds)
	}
	if len(t.Stacks) > 0 {
		r.Stack = t.Stacks[0].Frames
	}
	// The most frequent first: the list is sorted by time, where a thread
	// that waits in poll between rounds of a million failing reads has
	// poll first.
	byCount := slices.Clone(t.Syscalls)
	slices.SortStableFunc(byCount, func(a, b syscalls.Syscall) int { return cmp.Compare(b.Count, a.Count) })
	for i, s := range byCount {
		if i == 3 {
			break
		}
		s.Hist = nil
		r.Syscalls = append(r.Syscalls, s)
	}
	return r
}
