package verdict

import (
	"fmt"
	"path"

	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/syscalls"
)

// Observation is what was seen of one process over a window.
type Observation struct {
	Seconds float64 `json:"seconds"` // length of the window
	PID     int     `json:"pid"`
	Name    string  `json:"name"`
	// Runtime is "go" for a Go program, "jvm" for a Java virtual
	// machine, "" otherwise: it tells which garbage collector to look for.
	Runtime string   `json:"runtime,omitempty"`
	CPU     proc.CPU `json:"cpu"` // the process, in percent of one core
	// Children is the CPU of children that exited and were waited for
	// within the window, in percent of one core.
	Children float64 `json:"children_cpu"`
	// NoSyscalls says the syscalls were not observed (no tracer could
	// attach): a thread without any is then not known to make few, and
	// the rules that need that say nothing.
	NoSyscalls bool `json:"no_syscalls,omitempty"`
	// Samples counts the on-CPU stack samples of the process.
	Samples int `json:"samples"`
	// GIL is the state of a Python interpreter's GIL read at the
	// samples (gil_contention.go); nil for a process that runs none.
	GIL *GIL `json:"gil,omitempty"`
	// Threads are the live threads, hottest first, and one row for the
	// threads that ended during the window (Thread.Exited).
	Threads []Thread `json:"threads"`
	// ThreadsAlive is the number of threads alive at the end of the
	// window.
	ThreadsAlive int `json:"threads_alive"`
	// Dropped counts the calls the syscall tracer could not count (its
	// table of keys was full): every count and rate is then a lower
	// bound, and Judge says so in each verdict.
	Dropped uint64 `json:"dropped_calls,omitempty"`
	// Counting says how the syscalls were counted: when in slices of the
	// window (Sampled), every count is an estimate, scaled, and a count
	// of distinct things (fds, threads) holds only those seen in the
	// slices; Judge says so in each verdict. nil: every call counted.
	Counting *syscalls.Counting `json:"counting,omitempty"`
	// Host is the host's CPU over the window (host.go); nil when not
	// read.
	Host *Host `json:"host,omitempty"`
	// Cgroups are the target's cgroup with the CPU controller and its
	// ancestors over the window, its own first (throttled.go); nil when
	// not read.
	Cgroups []CgroupCPU `json:"cgroups,omitempty"`
	// Neighbours are the busiest other processes that may run on the
	// target's CPUs (starved.go); Nice is the target's nice value.
	Neighbours []Neighbour `json:"neighbours,omitempty"`
	Nice       int         `json:"nice,omitempty"`
	// Kernel says the process is a kernel thread (kernel_thread.go).
	Kernel bool `json:"kernel,omitempty"`
	// KernelThreads are the busiest kernel threads of the host over the
	// window (ksoftirqd, kworker, ...), with their CPU.
	KernelThreads []Neighbour `json:"kernel_threads,omitempty"`
}

// Thread is what was seen of one thread, or of the threads that ended
// during the window.
type Thread struct {
	TID  int      `json:"tid"`
	Name string   `json:"name"`
	CPU  proc.CPU `json:"cpu"`
	// Exited, when not 0, says this row is not one thread but that many
	// threads that ended during the window, merged (TID 0): their calls,
	// their samples and their CPU (the process's less its live
	// threads'). The rules judging one thread skip it, and no thread in
	// it is counted as one of several (lock_contention).
	Exited int `json:"exited,omitempty"`
	// Demand is the part of the window the thread ran or waited to run,
	// in percent: a loop sharing a core with others gets a part of it but
	// wants all of it, which its CPU alone would hide on a busy machine.
	// 0 when unknown.
	Demand float64 `json:"demand,omitempty"`
	// Syscalls are its system calls, with results and fds (package
	// syscalls), hottest first.
	Syscalls []syscalls.Syscall `json:"syscalls"`
	Samples  int                `json:"samples"` // on-CPU samples
	Stacks   []Stack            `json:"stacks"`  // its distinct user stacks, most sampled first
	// Code is its hottest function's hottest instructions, when it was
	// sampled in user code.
	Code *Code `json:"code,omitempty"`
}

// Stack is one user stack and how often it was sampled.
type Stack struct {
	Frames []string `json:"frames"`           // function names (or module+offset), innermost first
	Kernel []string `json:"kernel,omitempty"` // kernel frames above it, innermost first, when recorded
	Count  int      `json:"count"`
	// Interpreted is its innermost frame of code an interpreter ran (a
	// Python function), when it has one: the user's code, whatever
	// native frames of the interpreter or of C extensions run under it.
	Interpreted *Interpreted `json:"interpreted,omitempty"`
}

// Interpreted is a frame of code an interpreter ran.
type Interpreted struct {
	Language string `json:"language"` // "Python"
	Function string `json:"function"` // qualified: Indexer.rebuild
	File     string `json:"file"`
	Line     int    `json:"line"`
}

// String is the frame as stacks print it: Indexer.rebuild (index.py:42).
func (f Interpreted) String() string {
	return fmt.Sprintf("%s (%s:%d)", f.Function, path.Base(f.File), f.Line)
}

// Code is a function's hottest instructions, disassembled and annotated
// with their samples: the `disas` step of an investigation.
type Code struct {
	Function     string        `json:"function"`
	Samples      int           `json:"samples"` // samples whose leaf is in the function
	Instructions []Instruction `json:"instructions"`
	// Loop is the innermost loop around the hottest instruction, when
	// its code has one; Instructions then hold all of it. A spin is told
	// by what its loop holds, which does not depend on which of its
	// instructions the samples land on.
	Loop *Loop `json:"loop,omitempty"`
}

// Loop is the address range of a loop: from its first instruction (the
// target of the branch that closes it) to the end of that branch.
type Loop struct {
	Start uint64 `json:"start"`
	End   uint64 `json:"end"` // exclusive
}

// Instruction is one disassembled instruction.
type Instruction struct {
	Addr    uint64 `json:"addr"`
	Text    string `json:"text"` // Intel or ARM syntax
	Samples int    `json:"samples"`
}

// load is what the thread would use of a core if it had one to itself:
// its demand, or its CPU where that is unknown.
func (t *Thread) load() float64 { return max(t.CPU.Total, t.Demand) }

// calls returns the number of syscalls the thread made.
func (t *Thread) calls() uint64 {
	var n uint64
	for _, s := range t.Syscalls {
		n += s.Count
	}
	return n
}

// syscall returns the thread's calls of the named syscall, if any.
func (t *Thread) syscall(name string) *syscalls.Syscall {
	for i := range t.Syscalls {
		if t.Syscalls[i].Name == name {
			return &t.Syscalls[i]
		}
	}
	return nil
}
