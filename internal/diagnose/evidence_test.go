package diagnose

import (
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/container"
	"github.com/cpuwhy/cpuwhy/internal/cpuprofile"
	"github.com/cpuwhy/cpuwhy/internal/flame"
	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/stack"
	"github.com/cpuwhy/cpuwhy/internal/syscalls"
	"github.com/cpuwhy/cpuwhy/internal/sysno"
	"github.com/cpuwhy/cpuwhy/internal/target"
)

// Recorded evidence: what the diagnosis's collaborators answered about one
// process over one window, as JSON under testdata/, so that the whole
// diagnosis runs again on it without root, BPF, perf events or the
// process. TestPatterns writes it with -record-evidence DIR, the
// collaborators wrapped by a recorder; the replay gives it back through
// fakes of the same seams.

var recordEvidence = flag.String("record-evidence", "", "write what the live diagnoses saw to DIR/<subtest>.evidence.json")

// evidence is the JSON form. Syscalls are named, not numbered, and errnos
// too, so that a file reads (and can be written) by hand; Arch is the
// target's, which numbers its syscalls and encodes its code.
type evidence struct {
	About    string         `json:"about"`
	Arch     string         `json:"arch"`
	Target   evTarget       `json:"target"`
	Readings [2]evReading   `json:"readings"` // at the start and the end of the window
	Syscalls *evSyscalls    `json:"syscalls"` // null: no syscall profile (SyscallsError says why)
	SysErr   string         `json:"syscalls_error,omitempty"`
	Stacks   *evStacks      `json:"stacks"` // null: no stack samples (StacksError says why)
	StackErr string         `json:"stacks_error,omitempty"`
	FDs      map[int]string `json:"fds,omitempty"`  // what DescribeAll said of each fd
	Maps     []string       `json:"maps,omitempty"` // the paths mapped
	Memory   []evMemory     `json:"memory,omitempty"`
}

type evTarget struct {
	Kernel  bool   `json:"kernel,omitempty"` // a kernel thread
	PID     int    `json:"pid"`
	NsPID   int    `json:"ns_pid,omitempty"`
	Name    string `json:"name"`
	Cmdline string `json:"cmdline,omitempty"`
}

type evReading struct {
	Taken     time.Time     `json:"taken"`
	SinceBoot time.Duration `json:"since_boot_ns"`
	Process   evTask        `json:"process"`
	Threads   []evTask      `json:"threads"`
	Host      *evHost       `json:"host,omitempty"` // the host's files, as read
	Allowed   []int         `json:"allowed_cpus,omitempty"`
	// Cgroup is the CPU controller of the target's cgroups, as read.
	Cgroup []container.CPULevel `json:"cgroup,omitempty"`
	// Others are the host's other processes: stat times, and for those
	// that ran, their CPUs and container.
	Others []evOther `json:"others,omitempty"`
}

type evOther struct {
	PID       int    `json:"pid"`
	Comm      string `json:"comm"`
	UTime     uint64 `json:"utime"`
	STime     uint64 `json:"stime"`
	StartTime uint64 `json:"start_time"`
	Nice      int    `json:"nice,omitempty"`
	Kernel    bool   `json:"kernel_thread,omitempty"`
	Allowed   []int  `json:"allowed_cpus,omitempty"`
	Container string `json:"container,omitempty"`
}

// evHost is the text of the host's files.
type evHost struct {
	Stat     string `json:"stat"`
	Softirqs string `json:"softirqs,omitempty"`
	Loadavg  string `json:"loadavg,omitempty"`
}

// evTask is a stat line (times in clock ticks) and, for a thread, its
// schedstat when it was read.
type evTask struct {
	PID        int      `json:"pid"`
	Comm       string   `json:"comm"`
	State      string   `json:"state"`
	UTime      uint64   `json:"utime"`
	STime      uint64   `json:"stime"`
	CUTime     uint64   `json:"cutime,omitempty"`
	CSTime     uint64   `json:"cstime,omitempty"`
	NumThreads int      `json:"num_threads,omitempty"`
	StartTime  uint64   `json:"start_time"`
	Sched      *evSched `json:"schedstat,omitempty"`
}

type evSched struct {
	OnCPU   time.Duration `json:"on_cpu_ns"`
	Waiting time.Duration `json:"waiting_ns"`
	Slices  uint64        `json:"slices"`
}

type evSyscalls struct {
	Mechanism syscalls.Mechanism `json:"mechanism"`
	Start     time.Time          `json:"start"`
	Duration  time.Duration      `json:"duration_ns"`
	Threads   map[int]string     `json:"threads"`
	Calls     []evCall           `json:"calls"`
	Dropped   uint64             `json:"dropped,omitempty"`
	Ended     string             `json:"ended,omitempty"`
	Slowdown  float64            `json:"slowdown,omitempty"`
	Notes     []string           `json:"notes,omitempty"`
	// Counting says how the calls were counted (in slices: Calls hold
	// what the slices counted, and the report scales them).
	Counting *syscalls.Counting `json:"counting,omitempty"`
}

// evCall is one key of the syscall profile and its counts.
type evCall struct {
	TID     int      `json:"tid"`
	Syscall string   `json:"syscall"`
	Errno   string   `json:"errno,omitempty"` // "": success
	FD      int      `json:"fd"`              // -1: the syscall takes none
	Zero    bool     `json:"returned_0,omitempty"`
	Count   uint64   `json:"count"`
	Timed   uint64   `json:"timed,omitempty"`
	TotalNs uint64   `json:"total_ns,omitempty"`
	Hist    []uint64 `json:"hist,omitempty"` // log2 buckets, trailing zeros left out
	Bytes   uint64   `json:"bytes,omitempty"`
}

type evStacks struct {
	Samples        int           `json:"samples"`
	UnwoundToStart int           `json:"unwound_to_start"`
	Lost           uint64        `json:"lost,omitempty"`
	Dropped        uint64        `json:"dropped,omitempty"`
	Period         time.Duration `json:"period_ns"`
	Duration       time.Duration `json:"duration_ns"`
	Start          time.Time     `json:"start"`
	// Frames are the distinct frames, which Stacks index, as a pprof
	// profile's locations.
	Frames  []stack.Frame `json:"frames"`
	Stacks  []evStack     `json:"stacks"`
	Leaves  []evLeaf      `json:"leaves"`
	Missing []string      `json:"missing,omitempty"`
	Notes   []string      `json:"notes,omitempty"`
}

type evStack struct {
	TID    int    `json:"tid"`
	Thread string `json:"thread"`
	Count  int64  `json:"count"`
	Frames []int  `json:"frames"` // indexes in evStacks.Frames, innermost first
}

type evLeaf struct {
	TID      int     `json:"tid"`
	PC       hexAddr `json:"pc"`
	Function string  `json:"function"`
	Count    int     `json:"count"`
}

// evMemory is bytes read from the target at an address.
type evMemory struct {
	Addr  hexAddr  `json:"addr"`
	Bytes hexBytes `json:"bytes"`
}

type hexAddr uint64

func (a hexAddr) MarshalText() ([]byte, error) { return fmt.Appendf(nil, "%#x", uint64(a)), nil }
func (a *hexAddr) UnmarshalText(b []byte) error {
	v, err := strconv.ParseUint(string(b), 0, 64)
	*a = hexAddr(v)
	return err
}

type hexBytes []byte

func (b hexBytes) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(b)), nil }
func (b *hexBytes) UnmarshalText(t []byte) error {
	v, err := hex.DecodeString(string(t))
	*b = v
	return err
}

func loadEvidence(tb testing.TB, file string) *evidence {
	tb.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		tb.Fatal(err)
	}
	var e evidence
	if err := json.Unmarshal(b, &e); err != nil {
		tb.Fatalf("%s: %v", file, err)
	}
	return &e
}

// replay returns the target and the options whose collaborators answer
// from the evidence: nothing reaches a live process. FS is a root that
// does not exist, so that a collaborator left real would fail rather than
// read this machine's /proc.
func (e *evidence) replay(tb testing.TB) (target.Target, Options) {
	tb.Helper()
	t := target.Target{PID: e.Target.PID, NsPID: e.Target.NsPID, Name: e.Target.Name, Cmdline: e.Target.Cmdline, Kernel: e.Target.Kernel}
	opts := Options{
		FS:         proc.FS{Root: filepath.Join(tb.TempDir(), "no-proc")},
		Duration:   time.Second,
		Arch:       e.Arch,
		Accounting: &replayAccounting{readings: [2]Reading{e.Readings[0].reading(), e.Readings[1].reading()}},
		FDs:        fdTable(e.FDs),
		Maps:       mapList(e.Maps),
		Memory:     replayMemory(e.Memory),
	}
	if e.Syscalls != nil || e.SysErr != "" {
		var p *syscalls.Profile
		var err error
		mech := syscalls.EBPF
		if e.Syscalls != nil {
			p, mech = e.Syscalls.profile(tb, e.Arch, e.Target.PID), e.Syscalls.Mechanism
		} else {
			err = errors.New(e.SysErr)
		}
		opts.Tracers = []syscalls.Candidate{{Mechanism: mech, New: func() syscalls.Tracer { return replayTracer{p, err} }}}
	}
	var res *cpuprofile.Result
	var recErr error
	if e.Stacks != nil {
		res = e.Stacks.result(tb, e.Target.PID)
	} else {
		recErr = errors.New(cmp.Or(e.StackErr, "no stacks in the evidence"))
	}
	opts.Profiler = ProfilerFunc(func(ctx context.Context, pid int, o cpuprofile.Options) (*cpuprofile.Result, error) {
		if recErr != nil {
			return nil, recErr // failed before it was set up, as a real sampler
		}
		if o.Ready != nil {
			o.Ready()
		}
		return res, nil
	})
	return t, opts
}

// replayAccounting gives the two readings in turn.
type replayAccounting struct {
	mu       sync.Mutex
	readings [2]Reading
	read     int
}

func (a *replayAccounting) Check(int) error { return nil }

// Between is never called: the evidence is replayed without
// Options.KeepExited, with a reading at each end alone.
func (a *replayAccounting) Between(int) (Reading, error) {
	return Reading{}, errors.New("the evidence has no readings during the window")
}

func (a *replayAccounting) Read(int) (Reading, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.read == len(a.readings) {
		return Reading{}, fmt.Errorf("read %d times: the evidence has %d readings", a.read+1, len(a.readings))
	}
	a.read++
	return a.readings[a.read-1], nil
}

// replayTracer is a tracer that was ready at once and saw p.
type replayTracer struct {
	p   *syscalls.Profile
	err error
}

func (r replayTracer) Trace(_ context.Context, _ int, opts syscalls.Options) (*syscalls.Profile, error) {
	if r.err != nil {
		return nil, r.err
	}
	if opts.Ready != nil {
		opts.Ready()
	}
	return r.p, nil
}

type fdTable map[int]string

func (f fdTable) DescribeAll(_ int, fds []int) map[int]string {
	out := map[int]string{}
	for _, fd := range fds {
		if d, ok := f[fd]; ok {
			out[fd] = d
		}
	}
	return out
}

type mapList []string

func (m mapList) Maps(int) ([]proc.Mapping, error) {
	var out []proc.Mapping
	for _, p := range m {
		out = append(out, proc.Mapping{Path: p})
	}
	return out, nil
}

// replayMemory reads as process_vm_readv does: up to the end of the
// recorded bytes that hold addr, an error when none does.
type replayMemory []evMemory

func (m replayMemory) ReadMemory(pid int, p []byte, addr uint64) (int, error) {
	for _, r := range m {
		if a := uint64(r.Addr); addr >= a && addr < a+uint64(len(r.Bytes)) {
			return copy(p, r.Bytes[addr-a:]), nil
		}
	}
	return 0, fmt.Errorf("reading %d bytes at %#x of %d: not in the evidence", len(p), addr, pid)
}

func (r evReading) reading() Reading {
	out := Reading{Taken: r.Taken, SinceBoot: r.SinceBoot, Process: proc.Process{Stat: r.Process.stat()}, Sched: map[int]proc.Sched{}, Allowed: r.Allowed, Cgroup: r.Cgroup}
	for _, n := range r.Others {
		st := proc.Stat{PID: n.PID, Comm: n.Comm, UTime: n.UTime, STime: n.STime, StartTime: n.StartTime, Nice: n.Nice}
		if n.Kernel {
			st.Flags = 0x00200000 // PF_KTHREAD
		}
		out.Others = append(out.Others, Neighbour{Stat: st, Allowed: n.Allowed, Container: n.Container})
	}
	if h := r.Host; h != nil {
		out.Host = &HostFiles{Stat: []byte(h.Stat), Softirqs: []byte(h.Softirqs), Loadavg: []byte(h.Loadavg)}
	}
	for _, th := range r.Threads {
		out.Process.Threads = append(out.Process.Threads, th.stat())
		if s := th.Sched; s != nil {
			out.Sched[th.PID] = proc.Sched{OnCPU: s.OnCPU, Waiting: s.Waiting, Slices: s.Slices}
		}
	}
	return out
}

func (t evTask) stat() proc.Stat {
	st := proc.Stat{PID: t.PID, Comm: t.Comm, UTime: t.UTime, STime: t.STime, CUTime: t.CUTime, CSTime: t.CSTime,
		NumThreads: t.NumThreads, StartTime: t.StartTime}
	if t.State != "" {
		st.State = t.State[0]
	}
	return st
}

func (s *evSyscalls) profile(tb testing.TB, arch string, pid int) *syscalls.Profile {
	tb.Helper()
	errnos := map[string]int{}
	for e := 1; e < 4096; e++ {
		errnos[syscalls.ErrnoName(e)] = e
	}
	p := &syscalls.Profile{PID: pid, Mechanism: s.Mechanism, Start: s.Start, Duration: s.Duration, Threads: s.Threads,
		Stats: map[syscalls.Key]*syscalls.Stat{}, Dropped: s.Dropped, Ended: s.Ended, Slowdown: s.Slowdown, Notes: s.Notes, Counting: s.Counting}
	for _, c := range s.Calls {
		nr := sysno.Number(arch, c.Syscall)
		if n, err := strconv.Atoi(strings.TrimPrefix(c.Syscall, "syscall_")); nr < 0 && err == nil {
			nr = n
		}
		errno, ok := errnos[c.Errno]
		if nr < 0 || c.Errno != "" && !ok {
			tb.Fatalf("evidence: unknown syscall %q or errno %q on %s", c.Syscall, c.Errno, arch)
		}
		st := &syscalls.Stat{Count: c.Count, Timed: c.Timed, TotalNs: c.TotalNs, Bytes: c.Bytes}
		copy(st.Hist[:], c.Hist)
		k := syscalls.Key{TID: c.TID, Nr: nr, Errno: errno, FD: c.FD, Zero: c.Zero}
		if p.Stats[k] != nil {
			tb.Fatalf("evidence: %+v twice", c)
		}
		p.Stats[k] = st
	}
	return p
}

func (s *evStacks) result(tb testing.TB, pid int) *cpuprofile.Result {
	tb.Helper()
	p := &flame.Profile{Period: s.Period, Duration: s.Duration, PID: pid, Start: s.Start, Missing: s.Missing}
	for _, st := range s.Stacks {
		frames := make([]stack.Frame, len(st.Frames))
		for i, f := range st.Frames {
			if f < 0 || f >= len(s.Frames) {
				tb.Fatalf("evidence: stack %+v: no frame %d", st, f)
			}
			frames[i] = s.Frames[f]
		}
		p.Stacks = append(p.Stacks, flame.Stack{Frames: frames, Thread: st.Thread, TID: st.TID, Count: st.Count})
	}
	r := &cpuprofile.Result{Profile: p, Samples: s.Samples, UnwoundToStart: s.UnwoundToStart, Lost: s.Lost, Dropped: s.Dropped, Notes: s.Notes}
	for _, l := range s.Leaves {
		r.Leaves = append(r.Leaves, cpuprofile.Leaf{TID: l.TID, PC: uint64(l.PC), Function: l.Function, Count: l.Count})
	}
	return r
}

// recorder keeps what the real collaborators answered, to be written as
// evidence.
type recorder struct {
	mu       sync.Mutex
	arch     string
	readings []Reading
	prof     *syscalls.Profile
	traceErr error
	traced   bool
	res      *cpuprofile.Result
	recErr   error
	fds      map[int]string
	maps     []string
	memory   []evMemory
}

// recording wraps the collaborators of opts (the real ones where it has
// none) in a recorder.
func recording(opts Options) (Options, *recorder) {
	real := opts.withDefaults()
	r := &recorder{arch: real.Arch, fds: map[int]string{}}
	opts.Arch = real.Arch
	opts.Accounting = recordAccounting{real.Accounting, r}
	opts.Profiler = ProfilerFunc(func(ctx context.Context, pid int, o cpuprofile.Options) (*cpuprofile.Result, error) {
		res, err := real.Profiler.Record(ctx, pid, o)
		r.mu.Lock()
		r.res, r.recErr = res, err
		r.mu.Unlock()
		return res, err
	})
	opts.Tracers = nil
	for _, c := range real.Tracers {
		newTracer := c.New
		c.New = func() syscalls.Tracer { return recordTracer{newTracer(), r} }
		opts.Tracers = append(opts.Tracers, c)
	}
	opts.FDs = recordFDs{real.FDs, r}
	opts.Maps = recordMaps{real.Maps, r}
	opts.Memory = MemoryFunc(func(pid int, p []byte, addr uint64) (int, error) {
		n, err := real.Memory.ReadMemory(pid, p, addr)
		if n > 0 {
			r.mu.Lock()
			r.memory = append(r.memory, evMemory{hexAddr(addr), slices.Clone(p[:n])})
			r.mu.Unlock()
		}
		return n, err
	})
	return opts, r
}

type recordAccounting struct {
	Accounting
	r *recorder
}

func (a recordAccounting) Read(pid int) (Reading, error) {
	rd, err := a.Accounting.Read(pid)
	if err == nil {
		a.r.mu.Lock()
		a.r.readings = append(a.r.readings, rd)
		a.r.mu.Unlock()
	}
	return rd, err
}

type recordTracer struct {
	syscalls.Tracer
	r *recorder
}

func (t recordTracer) Trace(ctx context.Context, pid int, opts syscalls.Options) (*syscalls.Profile, error) {
	p, err := t.Tracer.Trace(ctx, pid, opts)
	t.r.mu.Lock()
	t.r.prof, t.r.traceErr, t.r.traced = p, err, true
	t.r.mu.Unlock()
	return p, err
}

type recordFDs struct {
	syscalls.FDDescriber
	r *recorder
}

func (f recordFDs) DescribeAll(pid int, fds []int) map[int]string {
	d := f.FDDescriber.DescribeAll(pid, fds)
	f.r.mu.Lock()
	for fd, desc := range d {
		f.r.fds[fd] = desc
	}
	f.r.mu.Unlock()
	return d
}

type recordMaps struct {
	Mappings
	r *recorder
}

func (m recordMaps) Maps(pid int) ([]proc.Mapping, error) {
	mapped, err := m.Mappings.Maps(pid)
	m.r.mu.Lock()
	for _, mp := range mapped {
		if mp.Path != "" && !slices.Contains(m.r.maps, mp.Path) {
			m.r.maps = append(m.r.maps, mp.Path)
		}
	}
	m.r.mu.Unlock()
	return mapped, err
}

// evidence is what was recorded of a diagnosis of t.
func (r *recorder) evidence(tb testing.TB, t target.Target, about string) *evidence {
	tb.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.readings) != 2 {
		tb.Fatalf("recorded %d readings, want 2", len(r.readings))
	}
	e := &evidence{About: about, Arch: r.arch, Target: evTarget{Kernel: t.Kernel, PID: t.PID, NsPID: t.NsPID, Name: t.Name, Cmdline: t.Cmdline},
		FDs: r.fds, Maps: r.maps, Memory: r.memory}
	slices.Sort(e.Maps)
	slices.SortFunc(e.Memory, func(a, b evMemory) int { return cmp.Compare(a.Addr, b.Addr) })
	for i, rd := range r.readings {
		e.Readings[i] = evReading{Taken: rd.Taken, SinceBoot: rd.SinceBoot, Process: task(rd.Process.Stat, nil), Allowed: rd.Allowed, Cgroup: rd.Cgroup}
		for _, n := range rd.Others {
			e.Readings[i].Others = append(e.Readings[i].Others, evOther{PID: n.Stat.PID, Comm: n.Stat.Comm, UTime: n.Stat.UTime, STime: n.Stat.STime,
				StartTime: n.Stat.StartTime, Nice: n.Stat.Nice, Kernel: n.Stat.KernelThread(), Allowed: n.Allowed, Container: n.Container})
		}
		if h := rd.Host; h != nil {
			e.Readings[i].Host = &evHost{Stat: string(h.Stat), Softirqs: string(h.Softirqs), Loadavg: string(h.Loadavg)}
		}
		for _, th := range rd.Process.Threads {
			var s *proc.Sched
			if sc, ok := rd.Sched[th.PID]; ok {
				s = &sc
			}
			e.Readings[i].Threads = append(e.Readings[i].Threads, task(th, s))
		}
	}
	switch {
	case r.prof != nil:
		e.Syscalls = calls(r.prof, r.arch)
	case r.traceErr != nil:
		e.SysErr = r.traceErr.Error()
	case !r.traced:
		e.SysErr = "no tracer"
	}
	if r.res != nil {
		e.Stacks = stacks(r.res)
	} else if r.recErr != nil {
		e.StackErr = r.recErr.Error()
	}
	return e
}

func task(st proc.Stat, s *proc.Sched) evTask {
	t := evTask{PID: st.PID, Comm: st.Comm, State: string(rune(st.State)), UTime: st.UTime, STime: st.STime,
		CUTime: st.CUTime, CSTime: st.CSTime, NumThreads: st.NumThreads, StartTime: st.StartTime}
	if s != nil {
		t.Sched = &evSched{OnCPU: s.OnCPU, Waiting: s.Waiting, Slices: s.Slices}
	}
	return t
}

func calls(p *syscalls.Profile, arch string) *evSyscalls {
	s := &evSyscalls{Mechanism: p.Mechanism, Start: p.Start, Duration: p.Duration, Threads: p.Threads, Dropped: p.Dropped,
		Ended: p.Ended, Slowdown: p.Slowdown, Notes: p.Notes, Counting: p.Counting}
	for k, st := range p.Stats {
		c := evCall{TID: k.TID, Syscall: sysno.Name(arch, k.Nr), FD: k.FD, Zero: k.Zero, Count: st.Count, Timed: st.Timed, TotalNs: st.TotalNs, Bytes: st.Bytes}
		if k.Errno != 0 {
			c.Errno = syscalls.ErrnoName(k.Errno)
		}
		hist := st.Hist[:]
		for len(hist) > 0 && hist[len(hist)-1] == 0 {
			hist = hist[:len(hist)-1]
		}
		c.Hist = slices.Clone(hist)
		s.Calls = append(s.Calls, c)
	}
	slices.SortFunc(s.Calls, func(a, b evCall) int {
		return cmp.Or(cmp.Compare(a.TID, b.TID), cmp.Compare(a.Syscall, b.Syscall), cmp.Compare(a.Errno, b.Errno),
			cmp.Compare(a.FD, b.FD), boolCompare(a.Zero, b.Zero))
	})
	return s
}

func boolCompare(a, b bool) int {
	switch {
	case a == b:
		return 0
	case b:
		return -1
	}
	return 1
}

func stacks(r *cpuprofile.Result) *evStacks {
	s := &evStacks{Samples: r.Samples, UnwoundToStart: r.UnwoundToStart, Lost: r.Lost, Dropped: r.Dropped, Notes: r.Notes}
	if p := r.Profile; p != nil {
		s.Period, s.Duration, s.Start, s.Missing = p.Period, p.Duration, p.Start, p.Missing
		index := map[stack.Frame]int{}
		for _, st := range p.Stacks {
			es := evStack{TID: st.TID, Thread: st.Thread, Count: st.Count, Frames: []int{}}
			for _, f := range st.Frames {
				i, ok := index[f]
				if !ok {
					i = len(s.Frames)
					index[f] = i
					s.Frames = append(s.Frames, f)
				}
				es.Frames = append(es.Frames, i)
			}
			s.Stacks = append(s.Stacks, es)
		}
	}
	for _, l := range r.Leaves {
		s.Leaves = append(s.Leaves, evLeaf{TID: l.TID, PC: hexAddr(l.PC), Function: l.Function, Count: l.Count})
	}
	return s
}

// diagnoseRecording runs the live diagnosis with its collaborators
// recorded, and writes the evidence to the -record-evidence directory,
// named after the (sub)test.
func diagnoseRecording(t *testing.T, tg target.Target, opts Options) (*Result, error) {
	t.Helper()
	opts, rec := recording(opts)
	res, err := Run(context.Background(), tg, opts)
	if err != nil {
		return res, err
	}
	release, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	about := fmt.Sprintf("recorded by go test -run '%s' -record-evidence on Linux %s (%s), %s", t.Name(),
		strings.TrimSpace(string(release)), runtime.GOARCH, time.Now().UTC().Format(time.DateOnly))
	b, err := json.Marshal(rec.evidence(t, tg, about))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(*recordEvidence, path.Base(t.Name())+".evidence.json")
	if err := os.WriteFile(file, indentOuter(b), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("evidence written to %s", file)
	return res, nil
}

// indentOuter indents compact JSON down to the records (a thread, a call,
// a frame, a stack) and leaves each of those on one line: a recording of
// a hundred stacks of a dozen frames reads as a hundred lines, not
// thousands. Containers of depth 3 or less are broken, arrays of depth 4
// too (a reading's threads).
func indentOuter(compact []byte) []byte {
	var out []byte
	var open []bool // per container: broken into lines
	newline := func(depth int) {
		out = append(out, '\n')
		for range depth {
			out = append(out, '\t')
		}
	}
	inString, escaped := false, false
	for i := 0; i < len(compact); i++ {
		c := compact[i]
		if inString {
			out = append(out, c)
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
			out = append(out, c)
		case '{', '[':
			depth := len(open) + 1
			broken := depth <= 3 || depth == 4 && c == '['
			out = append(out, c)
			if i+1 < len(compact) && (compact[i+1] == '}' || compact[i+1] == ']') {
				broken = false
			}
			open = append(open, broken)
			if broken {
				newline(depth)
			}
		case '}', ']':
			if open[len(open)-1] {
				newline(len(open) - 1)
			}
			open = open[:len(open)-1]
			out = append(out, c)
		case ',':
			out = append(out, c)
			if open[len(open)-1] {
				newline(len(open))
			}
		case ':':
			out = append(out, c)
			if open[len(open)-1] {
				out = append(out, ' ')
			}
		default:
			out = append(out, c)
		}
	}
	return append(out, '\n')
}
