package diagnose

import (
	"context"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/container"
	"github.com/cpuwhy/cpuwhy/internal/cpuprofile"
	"github.com/cpuwhy/cpuwhy/internal/fds"
	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/sys"
)

// The diagnosis's collaborators: everything it reads of the target comes
// through one of these, given in Options (nil: the real one), as
// google/pprof's driver takes its fetcher and symbolizer. The syscall
// tracer is the fifth, Options.Tracers. A recorded evidence set behind
// them is diagnosed without root, BPF, perf events or a live target.

// Accounting reads a process's CPU accounting (from /proc by default).
type Accounting interface {
	// Check reads the process alone, not its threads, so that a target
	// that is gone or unreadable fails before any instrument is set up.
	Check(pid int) error
	// Read reads the process and every thread of it, at one end of the
	// window.
	Read(pid int) (Reading, error)
	// Between reads them during the window (Options.KeepExited), in
	// case the process exits and that reading ends the window: all but
	// the host's other processes (Others nil), which only the two ends
	// compare and which cost most of a reading (a stat file per process
	// of the host). So that they are compared when the process is gone,
	// Read returns them (Others, OthersTaken) with the error it returns
	// then.
	Between(pid int) (Reading, error)
}

// Reading is a process's accounting at one moment: stat for user and
// system time, schedstat for time on and waiting for a CPU.
type Reading struct {
	Taken     time.Time     // when the reading began (wall clock, with a monotonic reading when live)
	SinceBoot time.Duration // the same moment on the clock of Stat.StartTime
	Process   proc.Process  // the process's stat and each thread's
	// Sched is each thread's schedstat, by TID; a thread whose
	// schedstat could not be read is absent.
	Sched map[int]proc.Sched
	// Host is the host's accounting files (host.go); nil when not read.
	Host *HostFiles
	// Allowed are the CPUs the process may run on; nil when not read.
	Allowed []int
	// Cgroup is the CPU controller of the process's cgroup and of each
	// ancestor, its own first; nil when not read.
	Cgroup []container.CPULevel
	// Others are the host's processes, for who else ran (neighbours.go);
	// nil when not read. OthersTaken is when they were read, when that
	// is not Taken: the end of a window whose target exited, which ends
	// for the target at an earlier reading of it (Options.KeepExited).
	Others      []Neighbour
	OthersTaken time.Time
}

// othersTaken is when r.Others were read.
func (r Reading) othersTaken() time.Time {
	if r.OthersTaken.IsZero() {
		return r.Taken
	}
	return r.OthersTaken
}

// snapshot is the reading as package proc compares them.
func (r Reading) snapshot() *proc.Snapshot {
	return &proc.Snapshot{Taken: r.Taken, SinceBoot: r.SinceBoot, Processes: []proc.Process{r.Process}}
}

// Profiler records on-CPU stack samples of a process for the window
// (cpuprofile.Record by default). It calls opts.Ready once set up, the
// window starting when that returns, and returns when the window ends.
type Profiler interface {
	Record(ctx context.Context, pid int, opts cpuprofile.Options) (*cpuprofile.Result, error)
}

// ProfilerFunc is a function that is a Profiler.
type ProfilerFunc func(ctx context.Context, pid int, opts cpuprofile.Options) (*cpuprofile.Result, error)

// Record implements Profiler.
func (f ProfilerFunc) Record(ctx context.Context, pid int, opts cpuprofile.Options) (*cpuprofile.Result, error) {
	return f(ctx, pid, opts)
}

// Mappings lists a process's memory mappings (proc.FS does), where the
// diagnosis looks for a runtime whose stacks do not say which it is.
type Mappings interface {
	Maps(pid int) ([]proc.Mapping, error)
}

// Memory reads a process's memory: the bytes of its hot code, for the
// listing (sys.ReadProcessMemory by default). As process_vm_readv does,
// it returns the bytes read up to the first unmapped one, and an error
// when addr itself cannot be read.
type Memory interface {
	ReadMemory(pid int, p []byte, addr uint64) (int, error)
}

// MemoryFunc is a function that is a Memory.
type MemoryFunc func(pid int, p []byte, addr uint64) (int, error)

// ReadMemory implements Memory.
func (f MemoryFunc) ReadMemory(pid int, p []byte, addr uint64) (int, error) { return f(pid, p, addr) }

// withDefaults fills in what opts leaves to the real collaborators.
func (opts Options) withDefaults() Options {
	if opts.Duration <= 0 {
		opts.Duration = DefaultDuration
	}
	if opts.Arch == "" {
		opts.Arch = arch
	}
	if opts.Accounting == nil {
		opts.Accounting = &procAccounting{fs: opts.FS, scanner: proc.NewScanner(opts.FS)}
	}
	if opts.Profiler == nil {
		opts.Profiler = ProfilerFunc(cpuprofile.Record)
	}
	if opts.FDs == nil {
		opts.FDs = fds.NewDescriber(opts.FS)
	}
	if opts.Maps == nil {
		opts.Maps = opts.FS
	}
	if opts.Memory == nil {
		opts.Memory = MemoryFunc(sys.ReadProcessMemory)
	}
	return opts
}

// procAccounting reads the accounting from a /proc tree.
type procAccounting struct {
	fs      proc.FS
	scanner *proc.Scanner
	others  *proc.Scanner // of every process: the neighbours
	prev    []Neighbour   // the neighbours at the previous reading
}

func (a *procAccounting) Check(pid int) error {
	_, err := a.scanner.ReadProcess(pid, false)
	return err
}

func (a *procAccounting) Read(pid int) (Reading, error) {
	r, err := a.Between(pid)
	if err != nil && a.prev == nil {
		return r, err // the first end: there is no window
	}
	if a.others == nil {
		a.others = proc.NewScanner(a.fs)
	}
	// The first end's scan is prev of the second's, which reads the
	// CPUs and container of those that ran over the window.
	r.OthersTaken = time.Now()
	r.Others = readNeighbours(a.others, a.fs, a.prev)
	a.prev = r.Others
	return r, err
}

func (a *procAccounting) Between(pid int) (Reading, error) {
	taken, since := time.Now(), sys.SinceBoot()
	p, err := a.scanner.ReadProcess(pid, true)
	if err != nil {
		return Reading{}, err
	}
	if p.KernelThread() && len(p.Threads) == 0 {
		p.Threads = []proc.Stat{p.Stat} // a kernel thread is its one thread
	}
	r := Reading{Taken: taken, SinceBoot: since, Process: p, Sched: map[int]proc.Sched{}, Host: readHost(a.fs)}
	r.Allowed, _ = a.fs.AllowedCPUs(pid)
	r.Cgroup, _ = container.ReadCPULevels(a.fs, pid)
	for _, th := range p.Threads {
		if s, err := a.fs.Schedstat(pid, th.PID); err == nil {
			r.Sched[th.PID] = s
		}
	}
	return r, nil
}
