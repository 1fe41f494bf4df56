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

// TaskLister lists every user thread of the host at once, and where it
// can every user process; *taskiter.Iter (BPF) is the real one.
type TaskLister interface {
	Read(*taskiter.Listing) error
}

// Options configure a Sampler.
type Options struct {
	Proc       proc.FS
	Containers ContainerResolver // nil: no container column
	// Tasks, when set, lists the threads of a thread view (with the
	// system call each sleeping one is in), and where it can the
	// processes' own figures, in one read, instead of a stat and a
	// syscall file per thread and a stat per process from /proc: a cold
	// view of 10,000 threads took 158 ms of CPU from /proc. Processes it
	// does not list, and every refresh where it fails, are read from
	// /proc.
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
	listing  taskiter.Listing
	// inCall is, from the latest listing of Options.Tasks, the system
	// call each thread is in (-1: outside one or running), by PID, in
	// the order of the process's threads in the snapshot (by TID), which
	// is that of its ThreadUsage in the comparison: a map by PID of a
	// hundred entries, not one by TID of ten thousand.
	inCall map[int][]int32
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
		inCall:   map[int][]int32{},
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

// scanOptions are those of the scan for spec: with the threads, and
// where it can the processes, listed by Options.Tasks when it is set and
// a thread view is asked for.
func (s *Sampler) scanOptions(spec Spec) proc.ScanOptions {
	o := proc.ScanOptions{Threads: spec.Threads, PIDs: spec.PIDs}
	clear(s.inCall)
	if !spec.Threads || s.opts.Tasks == nil {
		return o
	}
	l := &s.listing
	if err := s.opts.Tasks.Read(l); err != nil {
		return o // this refresh from /proc
	}
	groups := l.Groups
	if groups == nil {
		// The iter/task program: each process's own figures from
		// /proc. Its threads come together; sorted all the same, so
		// that a process listed in two runs keeps all its threads.
		slices.SortFunc(l.Tasks, func(a, b taskiter.Task) int {
			if a.TGID != b.TGID {
				return a.TGID - b.TGID
			}
			return a.TID - b.TID
		})
		groups = runs(l.Tasks)
		o.ThreadStats = make(map[int][]proc.Stat, len(groups))
	} else {
		o.Listed = make([]proc.Process, 0, len(groups))
	}
	// One allocation for every thread's stat, and one for every call.
	stats := make([]proc.Stat, len(l.Tasks))
	calls := make([]int32, len(l.Tasks))
	for _, g := range groups {
		ts := l.Tasks[g.First : g.First+g.Count]
		var leader *taskiter.Task
		if ts[0].TID == g.TGID {
			lt := ts[0]
			leader = &lt
		}
		slices.SortFunc(ts, func(a, b taskiter.Task) int { return a.TID - b.TID })
		st, nr := stats[g.First:g.First+g.Count:g.First+g.Count], calls[g.First:g.First+g.Count:g.First+g.Count]
		for i := range ts {
			st[i] = taskStat(&ts[i], len(ts))
			nr[i] = int32(ts[i].Syscall)
		}
		if o.ThreadStats != nil {
			o.ThreadStats[g.TGID] = st
		} else if leader != nil {
			// The process's own line, as /proc/PID/stat's: its leader's,
			// with the times, threads and memory of the whole process.
			p := proc.Process{Stat: taskStat(leader, g.Threads), Threads: st}
			p.UTime, p.STime, p.RSSPages = g.UTime, g.STime, g.RSSPages
			o.Listed = append(o.Listed, p)
		} else {
			continue // no leader's record: /proc reads the process whole
		}
		s.inCall[g.TGID] = nr
	}
	if o.Listed != nil && spec.PIDs == nil {
		o.PIDs = s.wholeHost(l, o.Listed)
	}
	return o
}

// wholeHost returns the PIDs of listed, the processes of a walk, when
// the walk saw every task of the host (its count is the kernel's, read
// just after), so that the scan needs no listing of /proc: at 10,000
// threads that listing is 3 ms, since the kernel goes through every
// PID, threads included, to find the processes. Some VMs' PID 1 (a
// protected init) is not in the kernel's task lists the walk goes
// through: when its threads are all that is missing, it is read from
// /proc alone. Otherwise, or when a task started or ended between the
// walk and the count, nil: the scan lists /proc.
func (s *Sampler) wholeHost(l *taskiter.Listing, listed []proc.Process) []int {
	la, err := s.opts.Proc.Loadavg()
	if err != nil || la.Tasks == 0 {
		return nil
	}
	var pids []int
	if missing := la.Tasks - l.Walked; missing != 0 {
		if len(listed) > 0 && listed[0].PID == 1 {
			return nil
		}
		init, err := s.scanner.ReadProcess(1, false)
		if err != nil || init.NumThreads != missing {
			return nil
		}
		pids = append(make([]int, 0, len(listed)+1), 1)
	} else {
		pids = make([]int, 0, len(listed))
	}
	for _, p := range listed {
		pids = append(pids, p.PID)
	}
	return pids
}

// runs groups a listing's tasks into their processes, which it holds
// together.
func runs(tasks []taskiter.Task) []taskiter.Group {
	var out []taskiter.Group
	for i, t := range tasks {
		if len(out) == 0 || out[len(out)-1].TGID != t.TGID {
			out = append(out, taskiter.Group{TGID: t.TGID, First: i})
		}
		out[len(out)-1].Count++
	}
	return out
}

// taskStat is a listed thread as its /proc stat line reads.
func taskStat(t *taskiter.Task, threads int) proc.Stat {
	return proc.Stat{
		PID: t.TID, Comm: t.Comm, State: t.State, PPID: t.PPID, Flags: t.Flags,
		UTime: t.UTime, STime: t.STime, StartTime: t.StartTime, NumThreads: threads,
	}
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
		calls := s.inCall[u.PID]
		if len(calls) != len(u.Threads) {
			calls = nil
		}
		for i := range u.Threads {
			nr := int32(-1)
			if calls != nil {
				nr = calls[i]
			}
			p.Threads = append(p.Threads, s.thread(u.PID, &u.Threads[i], nr))
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

// thread is one row; inCall is the system call the task lister says it
// is in, -1 when it said none or was not asked.
func (s *Sampler) thread(pid int, t *proc.ThreadUsage, inCall int32) Thread {
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
	if inCall >= 0 {
		// The task lister said which call it is in, as it will at every
		// refresh: no file to read, nothing to remember.
		th.Syscall = sysno.Native(int(inCall))
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
			if th.Syscall != "" || th.Wchan != "" {
				continue // filled by Next
			}
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
