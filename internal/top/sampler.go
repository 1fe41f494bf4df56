package top

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"

	"github.com/cpuwhy/cpuwhy/internal/container"
	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/sys"
	"github.com/cpuwhy/cpuwhy/internal/sysno"
	"github.com/cpuwhy/cpuwhy/internal/taskiter"
)

// ContainerResolver names the container of a host PID; *container.Resolver
// is the real one.
type ContainerResolver interface {
	Lookup(pid int) (*container.Info, error)
}

// TaskLister lists every user thread of the host at once;
// *taskiter.Iter (a BPF task iterator) is the real one.
type TaskLister interface {
	List([]taskiter.Task) ([]taskiter.Task, error)
}

// Options configure a Sampler.
type Options struct {
	Proc       proc.FS
	Containers ContainerResolver // nil: no container column
	// Tasks, when set, lists the threads of a thread view (with the
	// system call each sleeping one is in) in one read, instead of a stat
	// and a syscall file per thread from /proc: a cold view of 10,000
	// threads took 158 ms of CPU from /proc. Processes it does not list,
	// and every refresh where it fails, are read from /proc.
	Tasks TaskLister
}

// Spec says what one refresh covers; it may change between refreshes (the
// live view toggles threads).
type Spec struct {
	Threads bool  // read threads of every process in the scan
	PIDs    []int // only these processes; nil means all
}

// Sampler produces Frames from successive snapshots.
type Sampler struct {
	opts    Options
	scanner *proc.Scanner
	prev    *proc.Snapshot
	meta    map[procKey]*meta
	blocked map[threadKey]blockedIn
	// sleepers are the sleeping threads of the latest frame, by TID: what
	// ResolveBlocked needs to read and cache where they sleep.
	sleepers map[int]sleeper
	buf      []byte
	page     int64
	tasks    []taskiter.Task
	// inCall is, from the latest listing of Options.Tasks, the system
	// call each sleeping thread is in (-1: outside one), by TID.
	inCall map[int]int
}

// procKey names one process across PID reuse.
type procKey struct {
	pid   int
	start uint64
}

// meta is what stays constant for a process's life and so is read once.
type meta struct {
	cmdline   string
	nsPID     int
	container *container.Info
	seen      bool // present in the latest scan
}

type threadKey struct {
	tid   int
	start uint64
}

type sleeper struct {
	pid  int
	key  threadKey
	when blockedIn // the thread's times and state in the latest frame
}

// blockedIn caches where a sleeping thread sleeps, valid while the thread
// has not run since: then it is still in the same call.
type blockedIn struct {
	utime, stime uint64
	state        byte
	syscall      string
	wchan        string
	seen         bool
}

// sameRun reports whether b and o describe the same stretch of sleep.
func (b blockedIn) sameRun(o blockedIn) bool {
	return b.utime == o.utime && b.stime == o.stime && b.state == o.state
}

// NewSampler returns a Sampler.
func NewSampler(o Options) (*Sampler, error) {
	root := o.Proc.Root
	if root == "" {
		root = proc.DefaultRoot
	}
	// Fail here, not on the first refresh, for a root that is no proc
	// filesystem at all.
	if _, err := procfs.NewFS(root); err != nil {
		return nil, fmt.Errorf("opening %s: %w", root, err)
	}
	return &Sampler{
		opts:     o,
		scanner:  proc.NewScanner(o.Proc),
		meta:     map[procKey]*meta{},
		blocked:  map[threadKey]blockedIn{},
		sleepers: map[int]sleeper{},
		inCall:   map[int]int{},
		buf:      make([]byte, 512),
		page:     int64(os.Getpagesize()),
	}, nil
}

// Prime takes the first snapshot, the baseline of the first Frame.
func (s *Sampler) Prime(spec Spec) error {
	snap, err := s.scanner.Scan(s.scanOptions(spec))
	if err != nil {
		return err
	}
	s.prev = snap
	return nil
}

// Next takes a snapshot and returns the Frame since the previous one
// (primed automatically, over no time, if there was none), unsorted.
func (s *Sampler) Next(spec Spec) (*Frame, error) {
	if s.prev == nil {
		if err := s.Prime(spec); err != nil {
			return nil, err
		}
	}
	snap, err := s.scanner.Scan(s.scanOptions(spec))
	if err != nil {
		return nil, err
	}
	usage := proc.Compare(s.prev, snap)
	frame := &Frame{
		Time:      snap.Taken,
		Interval:  (snap.SinceBoot - s.prev.SinceBoot).Seconds(),
		Processes: make([]Process, 0, len(usage)),
	}
	s.prev = snap
	for _, m := range s.meta {
		m.seen = false
	}
	for k, b := range s.blocked {
		b.seen = false
		s.blocked[k] = b
	}
	clear(s.sleepers)
	for i := range usage {
		frame.Processes = append(frame.Processes, s.process(&usage[i]))
	}
	s.forgetGone()
	return frame, nil
}

// scanOptions are those of the scan for spec: with the threads listed by
// Options.Tasks when it is set and a thread view is asked for.
func (s *Sampler) scanOptions(spec Spec) proc.ScanOptions {
	o := proc.ScanOptions{Threads: spec.Threads, PIDs: spec.PIDs}
	clear(s.inCall)
	if !spec.Threads || s.opts.Tasks == nil {
		return o
	}
	var err error
	if s.tasks, err = s.opts.Tasks.List(s.tasks[:0]); err != nil {
		return o // this refresh from /proc
	}
	o.ThreadStats = make(map[int][]proc.Stat)
	for _, t := range s.tasks {
		o.ThreadStats[t.TGID] = append(o.ThreadStats[t.TGID], proc.Stat{
			PID: t.TID, Comm: t.Comm, State: t.State, PPID: t.PPID, Flags: t.Flags,
			UTime: t.UTime, STime: t.STime, StartTime: t.StartTime,
		})
		if t.State == 'S' || t.State == 'D' {
			s.inCall[t.TID] = t.Syscall
		}
	}
	for pid, ts := range o.ThreadStats {
		slices.SortFunc(ts, func(a, b proc.Stat) int { return a.PID - b.PID })
		for i := range ts {
			ts[i].NumThreads = len(ts)
		}
		o.ThreadStats[pid] = ts
	}
	return o
}

func (s *Sampler) forgetGone() {
	for k, m := range s.meta {
		if !m.seen {
			delete(s.meta, k)
		}
	}
	for k, b := range s.blocked {
		if !b.seen {
			delete(s.blocked, k)
		}
	}
}

func (s *Sampler) process(u *proc.ProcessUsage) Process {
	m := s.metaOf(u.PID, u.StartTime)
	p := Process{
		PID:        u.PID,
		NsPID:      m.nsPID,
		PPID:       u.PPID,
		Name:       u.Comm,
		Cmdline:    m.cmdline,
		State:      string(u.State),
		CPU:        u.CPU.Total,
		User:       u.CPU.User,
		System:     u.CPU.System,
		NumThreads: u.NumThreads,
		RSSBytes:   u.RSSPages * s.page,
		Container:  m.container,
	}
	if u.Threads != nil {
		p.Threads = make([]Thread, 0, len(u.Threads))
		for i := range u.Threads {
			p.Threads = append(p.Threads, s.thread(u.PID, &u.Threads[i]))
		}
	}
	return p
}

func (s *Sampler) metaOf(pid int, start uint64) *meta {
	key := procKey{pid, start}
	if m, ok := s.meta[key]; ok {
		m.seen = true
		return m
	}
	id := s.opts.Proc.Identity(pid)
	m := &meta{seen: true, cmdline: id.Cmdline, nsPID: id.NsPID}
	if s.opts.Containers != nil {
		// A failed lookup leaves the container unknown rather than failing
		// the view: the process may have exited, or the engine be slow.
		m.container, _ = s.opts.Containers.Lookup(pid)
	}
	s.meta[key] = m
	return m
}

func (s *Sampler) thread(pid int, t *proc.ThreadUsage) Thread {
	th := Thread{
		TID:    t.PID,
		Name:   t.Comm,
		CPU:    t.CPU.Total,
		User:   t.CPU.User,
		System: t.CPU.System,
		State:  string(t.State),
	}
	if t.State != 'S' && t.State != 'D' {
		return th
	}
	key := threadKey{t.PID, t.StartTime}
	now := blockedIn{utime: t.UTime, stime: t.STime, state: t.State}
	s.sleepers[t.PID] = sleeper{pid: pid, key: key, when: now}
	if b, ok := s.blocked[key]; ok && b.sameRun(now) {
		b.seen = true
		s.blocked[key] = b
		th.Syscall, th.Wchan = b.syscall, b.wchan
		return th
	}
	// The task iterator said which call it is in: no file to read.
	if nr, ok := s.inCall[t.PID]; ok && nr >= 0 {
		now.syscall, now.seen = sysno.Native(nr), true
		s.blocked[key] = now
		th.Syscall = now.syscall
	}
	return th
}

// ResolveBlocked fills in, for the sleeping threads of procs, the system
// call or kernel function each is blocked in. It is apart from Next because
// the first look at a thread costs file reads, and at ten thousand threads
// those dominate a refresh: callers resolve the rows they show. What a
// thread that has not run since is blocked in is remembered, so a steady
// view pays only for threads that woke up.
func (s *Sampler) ResolveBlocked(procs []Process) {
	for i := range procs {
		for j := range procs[i].Threads {
			th := &procs[i].Threads[j]
			sl, ok := s.sleepers[th.TID]
			if !ok {
				continue
			}
			if b, ok := s.blocked[sl.key]; ok && b.sameRun(sl.when) {
				continue // filled by Next
			}
			b := sl.when
			b.syscall, b.wchan = s.whereBlocked(sl.pid, th.TID)
			b.seen = true
			s.blocked[sl.key] = b
			th.Syscall, th.Wchan = b.syscall, b.wchan
		}
	}
}

// whereBlocked reads the syscall a thread is in or, when it sleeps outside
// one, its wait channel: the kernel's wchan lookup searches the symbol
// table and adds nothing a user needs when the syscall is known. Both need
// ptrace access to the thread; without it they stay empty.
func (s *Sampler) whereBlocked(pid, tid int) (syscall, wchan string) {
	if n, err := sys.ReadProcFile(s.opts.Proc.TaskPath(pid, tid, "syscall"), s.buf); err == nil {
		syscall = ParseSyscallFile(s.buf[:n])
	}
	if syscall != "" {
		return syscall, ""
	}
	if n, err := sys.ReadProcFile(s.opts.Proc.TaskPath(pid, tid, "wchan"), s.buf); err == nil {
		if w := strings.TrimSpace(string(s.buf[:n])); w != "0" {
			wchan = w
		}
	}
	return syscall, wchan
}

// ParseSyscallFile names the syscall in /proc/TID/syscall text: "NR args...
// sp pc" while in a call, "-1 sp pc" when blocked outside one, "running"
// when on CPU.
func ParseSyscallFile(data []byte) string {
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return ""
	}
	nr, err := strconv.Atoi(f[0])
	if err != nil || nr < 0 {
		return ""
	}
	return sysno.Native(nr)
}
