package syscalls

import (
	"cmp"
	"runtime"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/cpuwhy/cpuwhy/internal/container"
	"github.com/cpuwhy/cpuwhy/internal/sysno"
	"github.com/cpuwhy/cpuwhy/internal/target"
)

// Report is a Profile summarized for people and scripts: per process and
// per thread, each syscall with its counts, time, latency, errors and fds,
// hottest first. Its JSON form is read by other tooling: fields may be
// added, never renamed.
type Report struct {
	PID       int             `json:"pid"`
	NsPID     int             `json:"ns_pid,omitempty"`
	Name      string          `json:"name,omitempty"`
	Container *container.Info `json:"container,omitempty"`
	// Picked says why this process when the user named none.
	Picked    *target.Pick `json:"picked,omitempty"`
	Duration  float64      `json:"duration_s"`
	Mechanism Mechanism    `json:"mechanism"`
	// TimeEvery is the sampling of durations: one call in TimeEvery was
	// timed (0: none).
	TimeEvery int        `json:"time_every"`
	Calls     uint64     `json:"calls"`
	Syscalls  []Syscall  `json:"syscalls"` // the whole process
	Threads   []Thread   `json:"threads"`
	Dropped   uint64     `json:"dropped"`
	Ended     string     `json:"ended,omitempty"`
	Slowdown  float64    `json:"slowdown,omitempty"`
	Notes     []string   `json:"notes,omitempty"`
	Stacks    []CallSite `json:"stacks,omitempty"`
	// Counting says how the calls were counted (see Counting); every
	// count and rate above is an estimate when it says sampled.
	Counting *Counting `json:"counting,omitempty"`
}

// Thread is one thread's syscalls.
type Thread struct {
	TID     int    `json:"tid"`
	Name    string `json:"name"`
	Calls   uint64 `json:"calls"`
	TotalNs uint64 `json:"total_ns"`
	// BusyNs is TotalNs without the calls made to wait (Waits): the
	// syscall time that may be the kernel working for the thread. The
	// threads are ranked by it, so a thread spinning on recvfrom comes
	// before those blocked in epoll_wait all the window.
	BusyNs   uint64    `json:"busy_ns"`
	Syscalls []Syscall `json:"syscalls"`
}

// Syscall is one syscall's calls within a thread or the process.
type Syscall struct {
	Name  string  `json:"name"`
	Nr    int     `json:"nr"`
	Count uint64  `json:"count"`
	Rate  float64 `json:"rate_per_s"`
	// TotalNs estimates the time spent in all calls from the timed ones
	// (measured sum × count / timed); 0 when none was timed.
	TotalNs uint64 `json:"total_ns"`
	Timed   uint64 `json:"timed"`
	MeanNs  uint64 `json:"mean_ns"`
	P50Ns   uint64 `json:"p50_ns"`
	P99Ns   uint64 `json:"p99_ns"`
	// Share is this syscall's part of its thread's (or the process's)
	// syscall time, in percent; by count when nothing was timed.
	Share float64 `json:"share"`
	OK    uint64  `json:"ok"`
	// Zero counts the successes that returned 0 (part of OK): nothing
	// read, no event ready, a timeout.
	Zero   uint64            `json:"returned_0"`
	Errors map[string]uint64 `json:"errors"`
	// FDs are the fds with the most calls, at most MaxFDs; FDCount is how
	// many distinct fds there were (2000 sockets read in turn).
	// Bytes is the sum of the positive return values: the bytes moved,
	// for the read and write calls.
	Bytes   uint64   `json:"bytes,omitempty"`
	FDs     []FD     `json:"fds,omitempty"`
	FDCount int      `json:"fd_count,omitempty"`
	Hist    []uint64 `json:"hist,omitempty"` // log2(ns) buckets of the timed calls
	// Ops split futex's calls by operation (Key.Op), most calls first,
	// when the tracer recorded it.
	Ops []Op `json:"ops,omitempty"`
}

// Op is the calls of one operation of a syscall (futex's WAKE, WAIT...).
type Op struct {
	Name  string `json:"op"`
	Count uint64 `json:"count"`
	// Zero counts the calls that returned 0: for WAKE, those that woke
	// nobody; for WAIT, those that were woken.
	Zero   uint64            `json:"returned_0"`
	Errors map[string]uint64 `json:"errors,omitempty"`
}

// Op returns the calls of operation name, or nil.
func (s *Syscall) Op(name string) *Op {
	for i := range s.Ops {
		if s.Ops[i].Name == name {
			return &s.Ops[i]
		}
	}
	return nil
}

// FD is one file descriptor a syscall was made on.
type FD struct {
	FD    int    `json:"fd"`
	Count uint64 `json:"count"`
	Desc  string `json:"desc"`
	// Bytes is the sum of the calls' positive return values on the fd:
	// the bytes moved, for the read and write calls.
	Bytes uint64 `json:"bytes,omitempty"`
}

// CallSite is a user stack seen at entry to a syscall.
type CallSite struct {
	TID    int      `json:"tid"`
	Thread string   `json:"thread"`
	Name   string   `json:"syscall"`
	Count  uint64   `json:"count"`
	PCs    []uint64 `json:"pcs"`
	Frames []string `json:"frames,omitempty"`
	// Chain is the Python frame chain read with the stack
	// (StackSample.Chain), which naming the frames puts in them.
	Chain []byte `json:"-"`
}

// FDDescriber says what a process's file descriptors are (package fds).
type FDDescriber interface {
	DescribeAll(pid int, fds []int) map[int]string
}

// MaxFDs bounds the fds listed per syscall; the rest are summed into the
// syscall's count only.
const MaxFDs = 5

// Summarize builds the Report of a profile. arch names the target's
// architecture for syscall names (runtime.GOARCH when empty); fds may be
// nil.
func Summarize(p *Profile, arch string, fds FDDescriber) *Report {
	if arch == "" {
		arch = runtime.GOARCH
	}
	stats, dropped := scaled(p)
	r := &Report{
		PID:       p.PID,
		Duration:  p.Duration.Seconds(),
		Mechanism: p.Mechanism,
		Dropped:   dropped,
		Counting:  p.Counting,
		Ended:     p.Ended,
		Slowdown:  p.Slowdown,
		Notes:     p.Notes,
		Syscalls:  []Syscall{},
		Threads:   []Thread{},
	}
	byThread := map[int]map[int][]keyed{} // tid -> nr -> entries
	byProcess := map[int][]keyed{}
	for k, s := range stats {
		if byThread[k.TID] == nil {
			byThread[k.TID] = map[int][]keyed{}
		}
		byThread[k.TID][k.Nr] = append(byThread[k.TID][k.Nr], keyed{k, s})
		byProcess[k.Nr] = append(byProcess[k.Nr], keyed{k, s})
	}
	var wantFDs []int
	for tid, calls := range byThread {
		t := Thread{TID: tid, Name: p.Threads[tid], Syscalls: []Syscall{}}
		for nr, entries := range calls {
			sc := summarize(arch, nr, entries, r.Duration)
			t.Calls += sc.Count
			t.TotalNs += sc.TotalNs
			if !Waits(sc.Name) {
				t.BusyNs += sc.TotalNs
			}
			for _, f := range sc.FDs {
				wantFDs = append(wantFDs, f.FD)
			}
			t.Syscalls = append(t.Syscalls, sc)
		}
		share(t.Syscalls)
		sortSyscalls(t.Syscalls)
		r.Calls += t.Calls
		r.Threads = append(r.Threads, t)
	}
	for nr, entries := range byProcess {
		r.Syscalls = append(r.Syscalls, summarize(arch, nr, entries, r.Duration))
	}
	share(r.Syscalls)
	sortSyscalls(r.Syscalls)
	slices.SortFunc(r.Threads, func(a, b Thread) int {
		if c := cmp.Compare(b.BusyNs, a.BusyNs); c != 0 {
			return c
		}
		if c := cmp.Compare(b.Calls, a.Calls); c != 0 {
			return c
		}
		return cmp.Compare(a.TID, b.TID)
	})
	if fds != nil && len(wantFDs) > 0 {
		slices.Sort(wantFDs)
		desc := fds.DescribeAll(p.PID, slices.Compact(wantFDs))
		describe := func(list []Syscall) {
			for i := range list {
				for j := range list[i].FDs {
					list[i].FDs[j].Desc = desc[list[i].FDs[j].FD]
				}
			}
		}
		describe(r.Syscalls)
		for i := range r.Threads {
			describe(r.Threads[i].Syscalls)
		}
	}
	r.Stacks = callSites(p, arch)
	return r
}

type keyed struct {
	k Key
	s *Stat
}

// summarize merges the entries of one syscall (across results, fds and,
// for the process, threads).
func summarize(arch string, nr int, entries []keyed, seconds float64) Syscall {
	sc := Syscall{Name: sysno.Name(arch, nr), Nr: nr, Errors: map[string]uint64{}}
	var all Stat
	perFD := map[int]uint64{}
	perOp := map[string]*Op{}
	perFDBytes := map[int]uint64{}
	for _, e := range entries {
		all.Add(e.s)
		if e.k.Op != "" {
			op := perOp[e.k.Op]
			if op == nil {
				op = &Op{Name: e.k.Op}
				perOp[e.k.Op] = op
			}
			op.Count += e.s.Count
			switch {
			case e.k.Errno != 0:
				if op.Errors == nil {
					op.Errors = map[string]uint64{}
				}
				op.Errors[ErrnoName(e.k.Errno)] += e.s.Count
			case e.k.Zero:
				op.Zero += e.s.Count
			}
		}
		if e.k.Errno == 0 {
			sc.OK += e.s.Count
			if e.k.Zero {
				sc.Zero += e.s.Count
			}
		} else {
			sc.Errors[ErrnoName(e.k.Errno)] += e.s.Count
		}
		if e.k.FD != NoFD {
			perFD[e.k.FD] += e.s.Count
			perFDBytes[e.k.FD] += e.s.Bytes
		}
	}
	sc.Count = all.Count
	sc.Bytes = all.Bytes
	sc.Timed = all.Timed
	if seconds > 0 {
		sc.Rate = float64(all.Count) / seconds
	}
	if all.Timed > 0 {
		sc.MeanNs = all.TotalNs / all.Timed
		sc.TotalNs = sc.MeanNs * all.Count
		sc.P50Ns = quantile(&all.Hist, all.Timed, 0.50)
		sc.P99Ns = quantile(&all.Hist, all.Timed, 0.99)
		last := 0
		for i, n := range all.Hist {
			if n > 0 {
				last = i
			}
		}
		sc.Hist = append([]uint64(nil), all.Hist[:last+1]...)
	}
	for fd, n := range perFD {
		sc.FDs = append(sc.FDs, FD{FD: fd, Count: n, Bytes: perFDBytes[fd]})
	}
	sc.FDCount = len(sc.FDs)
	for _, op := range perOp {
		sc.Ops = append(sc.Ops, *op)
	}
	slices.SortFunc(sc.Ops, func(a, b Op) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	slices.SortFunc(sc.FDs, func(a, b FD) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return cmp.Compare(a.FD, b.FD)
	})
	if len(sc.FDs) > MaxFDs {
		sc.FDs = sc.FDs[:MaxFDs]
	}
	return sc
}

// quantile estimates the q-quantile of a log2 histogram as the middle of
// the bucket it falls in: within a factor of 1.5 of the truth.
func quantile(h *[HistBuckets]uint64, total uint64, q float64) uint64 {
	rank := uint64(q*float64(total-1)) + 1
	var seen uint64
	for i, n := range h {
		seen += n
		if seen >= rank {
			return (uint64(1) << i) * 3 / 2
		}
	}
	return 0
}

// share sets each syscall's share of the list's time, or of its calls when
// nothing was timed.
func share(list []Syscall) {
	var total, calls uint64
	for _, s := range list {
		total += s.TotalNs
		calls += s.Count
	}
	for i := range list {
		switch {
		case total > 0:
			list[i].Share = 100 * float64(list[i].TotalNs) / float64(total)
		case calls > 0:
			list[i].Share = 100 * float64(list[i].Count) / float64(calls)
		}
	}
}

func sortSyscalls(list []Syscall) {
	slices.SortFunc(list, func(a, b Syscall) int {
		if c := cmp.Compare(b.TotalNs, a.TotalNs); c != 0 {
			return c
		}
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
}

// ErrnoName names an errno as the C headers do (EAGAIN), or "errno N".
func ErrnoName(errno int) string {
	if name := unix.ErrnoName(unix.Errno(errno)); name != "" {
		return name
	}
	return "errno " + strconv.Itoa(errno)
}

// callSites lists the recorded stacks, most frequent first.
func callSites(p *Profile, arch string) []CallSite {
	var out []CallSite
	for k, samples := range p.Stacks {
		for _, s := range samples {
			out = append(out, CallSite{TID: k.TID, Thread: p.Threads[k.TID], Name: sysno.Name(arch, k.Nr), Count: s.Count, PCs: s.PCs, Chain: s.Chain})
		}
	}
	slices.SortFunc(out, func(a, b CallSite) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return cmp.Compare(a.TID, b.TID)
	})
	return out
}
