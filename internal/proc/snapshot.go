package proc

import (
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/sys"
)

// Process is one process's accounting at one instant.
type Process struct {
	Stat
	// Threads holds each thread's own stat; nil unless the scan asked for
	// threads. It may be shared with an earlier snapshot: never modify it.
	Threads []Stat
}

// Exited reports whether every thread of the process has exited (a
// zombie process); it needs the threads read.
func (p *Process) Exited() bool {
	if !p.Stat.Exited() {
		return false
	}
	for _, t := range p.Threads {
		if !t.Exited() {
			return false
		}
	}
	return true
}

// Snapshot is one pass over /proc.
type Snapshot struct {
	Taken     time.Time     // the scan's start, wall clock with monotonic reading
	SinceBoot time.Duration // the scan's start on the clock of Stat.StartTime
	Processes []Process     // sorted by PID
}

// Find returns the process with the given PID, or nil.
func (s *Snapshot) Find(pid int) *Process {
	i, ok := slices.BinarySearchFunc(s.Processes, pid, func(p Process, pid int) int { return p.PID - pid })
	if !ok {
		return nil
	}
	return &s.Processes[i]
}

// ScanOptions says what a Scan reads.
type ScanOptions struct {
	// Threads reads every thread's stat as well as every process's.
	Threads bool
	// PIDs limits the scan to these processes; nil means all of them.
	PIDs []int
	// KernelThreads keeps kernel threads, which have no user space and are
	// dropped by default.
	KernelThreads bool
	// ThreadStats, with Threads, are the threads of processes already
	// read by other means (a BPF task iterator lists every thread of the
	// host in one read, where /proc takes a file per thread), by PID,
	// each sorted by TID. A process not in it has its threads read from
	// /proc.
	ThreadStats map[int][]Stat
	// Listed, with Threads, are processes already read whole by other
	// means, each with its threads sorted by TID, sorted by PID (a BPF
	// walker lists every user process and thread of the host in one
	// run). The scan still lists /proc, and reads from it only the
	// processes Listed does not hold; a listed process /proc no longer
	// lists has exited and is left out.
	Listed []Process
}

// Scanner takes snapshots, reusing its buffers from one scan to the next so
// that a refresh allocates little beyond the snapshot itself.
type Scanner struct {
	fs      FS
	buf     []byte // one stat line
	dirents []byte // raw directory entries
	tids    []int
	last    *Snapshot // the previous scan, for carrying over idle threads
}

// NewScanner returns a Scanner of fs.
func NewScanner(fs FS) *Scanner {
	// A stat line is bounded by comm (16 bytes) and 52 numbers of at most
	// 20 digits: 1.5 KiB leaves room.
	return &Scanner{fs: fs, buf: make([]byte, 1536), dirents: make([]byte, 32<<10)}
}

// Scan reads one snapshot. Processes that exit during the scan are left
// out; only a failure to list the root is an error.
func (sc *Scanner) Scan(opt ScanOptions) (*Snapshot, error) {
	snap := &Snapshot{Taken: time.Now(), SinceBoot: sys.SinceBoot()}
	root, err := sys.OpenDir(sc.fs.root())
	if err != nil {
		return nil, fmt.Errorf("listing processes: %w", err)
	}
	defer root.Close()
	pids := opt.PIDs
	if pids == nil {
		pids, err = root.Numbers(nil, sc.dirents)
		if err != nil {
			return nil, fmt.Errorf("listing processes: %w", err)
		}
	}
	snap.Processes = make([]Process, 0, len(pids))
	listed := opt.Listed
	if !opt.Threads {
		listed = nil
	}
	for _, pid := range pids {
		if i, ok := slices.BinarySearchFunc(listed, pid, func(p Process, pid int) int { return p.PID - pid }); ok {
			snap.Processes = append(snap.Processes, listed[i])
			continue
		}
		p, err := sc.readProcess(root, pid, opt.Threads && opt.ThreadStats[pid] == nil)
		if err != nil {
			continue // exited since the listing
		}
		if ts := opt.ThreadStats[pid]; opt.Threads && ts != nil && !p.KernelThread() {
			p.Threads = ts
		}
		if p.KernelThread() && !opt.KernelThreads {
			continue
		}
		snap.Processes = append(snap.Processes, p)
	}
	slices.SortFunc(snap.Processes, func(a, b Process) int { return a.PID - b.PID })
	sc.last = snap
	return snap, nil
}

// ReadProcess reads one process (and its threads when threads is set).
// The error matches ErrGone when the process does not exist.
func (sc *Scanner) ReadProcess(pid int, threads bool) (Process, error) {
	root, err := sys.OpenDir(sc.fs.root())
	if err != nil {
		return Process{}, err
	}
	defer root.Close()
	p, err := sc.readProcess(root, pid, threads)
	if err != nil {
		return Process{}, fmt.Errorf("reading process %d: %w", pid, gone(err))
	}
	return p, nil
}

func (sc *Scanner) readProcess(root *sys.Dir, pid int, threads bool) (Process, error) {
	name := strconv.Itoa(pid)
	st, err := sc.readStat(root, name+"/stat")
	if err != nil {
		return Process{}, err
	}
	p := Process{Stat: st}
	if threads && !st.KernelThread() {
		if old := sc.idleSinceLast(st); old != nil {
			p.Threads = old.Threads
		} else {
			p.Threads = sc.threads(root, name+"/task")
		}
	}
	return p, nil
}

// idleSinceLast returns the process as the previous scan saw it when it has
// used no CPU and started or ended no thread since: then none of its threads
// ran for a measurable time, and their stats can be carried over instead of
// read again. On a host where most threads sleep, as on most servers, this is
// what keeps a refresh cheap; the cost is that a sleeping thread's state is
// as old as the process's last activity, which for a thread that has not
// run is what it still is.
func (sc *Scanner) idleSinceLast(st Stat) *Process {
	if sc.last == nil {
		return nil
	}
	old := sc.last.Find(st.PID)
	if old == nil || old.Threads == nil || old.StartTime != st.StartTime ||
		old.UTime != st.UTime || old.STime != st.STime || old.NumThreads != st.NumThreads {
		return nil
	}
	return old
}

func (sc *Scanner) threads(root *sys.Dir, taskDir string) []Stat {
	dir, err := sys.OpenDirAt(root, taskDir)
	if err != nil {
		return nil
	}
	defer dir.Close()
	sc.tids, err = dir.Numbers(sc.tids[:0], sc.dirents)
	if err != nil {
		return nil
	}
	out := make([]Stat, 0, len(sc.tids))
	for _, tid := range sc.tids {
		st, err := sc.readStat(dir, strconv.Itoa(tid)+"/stat")
		if err != nil {
			continue
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b Stat) int { return a.PID - b.PID })
	return out
}

func (sc *Scanner) readStat(dir *sys.Dir, name string) (Stat, error) {
	n, err := dir.ReadFile(name, sc.buf)
	if err != nil {
		return Stat{}, err
	}
	st, err := ParseStat(sc.buf[:n])
	if err != nil {
		return Stat{}, fmt.Errorf("%s: %w", name, err)
	}
	return st, nil
}
