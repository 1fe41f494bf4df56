package verdict

import (
	"fmt"
	"strings"
)

// lock_contention: threads handing a lock over through the kernel (futex
// wait and wake) so often that doing so is their work. It has two rules.
// The first is judged on the process, as it takes several threads. The
// second, fruitlessWake, on one thread: the other side of the lock may be
// in another process (memory shared between processes), so only the
// waker is seen, and what shows is its wakes finding nobody to wake.
//
// The row of threads that ended during the window (Thread.Exited) is not
// a contender: the threads in it did not live at the same time.
//
// Thresholds: the threads whose futex calls are LockShare or more of their
// calls are the contenders; there must be two or more, making LockRate or
// more futex calls between them, and using HotThreadCPU or more between
// them (rules.go). For one thread: futex wakes that woke nobody at
// LoopRate or more, LoopShare or more of the thread's calls (rules.go),
// and FruitlessWakeShare or more of its wakes.

const (
	// LockRate is the rate of futex calls, all the contenders together,
	// above which threads spend their time handing a lock over rather
	// than working: an uncontended mutex makes no futex call at all, and a
	// healthy pool of workers waking for jobs makes hundreds.
	LockRate = 10000.0

	// LockShare is the part of a thread's calls its futex calls must be
	// for it to be one of the contenders: a thread that mostly does other
	// calls (I/O, then a lock around its bookkeeping) is paced by them.
	LockShare = 0.5

	// FruitlessWakeShare is the part of a thread's futex wakes that must
	// have woken nobody (returned 0) for its wakes to be fruitless calls:
	// a lock or event that wakes only when its word says someone waits
	// (glibc's mutex, Go's notes) finds nobody only when a waiter left in
	// between, a waker that wakes whether or not anyone waits finds
	// nobody nearly every time (stress-ng --futex: 97%). Above LoopShare,
	// which the same calls must also be of all the thread's calls, or it
	// would add nothing.
	FruitlessWakeShare = 0.8
)

// wakeOps are the futex operations that return how many they woke.
var wakeOps = []string{"WAKE", "WAKE_BITSET", "WAKE_OP"}

func lockContention(o *Observation) (*Verdict, []int) {
	var futex, calls uint64
	var cpu float64
	var tids []int
	var top *Thread
	var topN uint64
	errs := map[string]uint64{}
	for i := range o.Threads {
		t := &o.Threads[i]
		s := t.syscall("futex")
		// Threads that ended are not counted: hundreds that each lived
		// one request and took the GIL a few times are not contenders.
		if s == nil || t.Exited > 0 || float64(s.Count) < LockShare*float64(t.calls()) {
			continue
		}
		futex += s.Count
		calls += t.calls()
		cpu += t.CPU.Total
		tids = append(tids, t.TID)
		for e, n := range s.Errors {
			errs[e] += n
		}
		if s.Count > topN {
			top, topN = t, s.Count
		}
	}
	if len(tids) < 2 || float64(futex)/o.Seconds < LockRate || cpu < HotThreadCPU {
		return nil, nil
	}
	v := newVerdict(LockContention, top)
	v.CPU, v.CPUOf = round1(cpu), CPUOfThreads
	for _, tid := range tids { // hottest first, as o.Threads
		for i := range o.Threads {
			if o.Threads[i].TID == tid {
				v.Threads = append(v.Threads, ThreadRef{TID: tid, Name: o.Threads[i].Name})
			}
		}
	}
	v.Syscall = str("futex")
	v.Summary = fmt.Sprintf("%d threads contend for a lock: they hand it over through the kernel %s (futex wait/wake), and spend their CPU doing so",
		len(tids), rate(float64(futex)/o.Seconds))
	ev := fmt.Sprintf("futex called %s by %d threads (%.0f%% of their calls), %.1f%% of a core between them", rate(float64(futex)/o.Seconds), len(tids), pct(float64(futex), float64(calls)), cpu)
	if n := errs["EAGAIN"]; n > 0 {
		ev += fmt.Sprintf("; %.0f%% of the waits found the lock already released (EAGAIN)", pct(float64(n), float64(futex)))
	}
	v.Evidence = append([]string{ev}, stackLine(top)...)
	v.Advice = "hold the lock for less time or less often: move work out of the critical section, shard the data behind several locks, batch items per acquisition, or use per-thread state and merge"
	return v, tids
}

// fruitlessWake is lock_contention seen from one thread: it wakes futex
// waiters that are not there, over and over. Its syscall profile must
// record futex's operation (the eBPF tracer does).
func fruitlessWake(o *Observation, t *Thread) *Verdict {
	s := t.syscall("futex")
	if s == nil {
		return nil
	}
	var wakes, nobody uint64
	for _, name := range wakeOps {
		if op := s.Op(name); op != nil {
			wakes += op.Count
			nobody += op.Zero
		}
	}
	n := float64(nobody)
	if n/o.Seconds < LoopRate || n/float64(t.calls()) < LoopShare || n/float64(wakes) < FruitlessWakeShare {
		return nil
	}
	v := newVerdict(LockContention, t)
	v.Syscall = str("futex")
	v.atSyscall(t, "futex")
	v.Summary = fmt.Sprintf("thread %s wakes futex waiters that are not there: %s of its wakes woke nobody, each a system call for a lock or event no one waited on",
		t.Name, rate(n/o.Seconds))
	ev := []string{
		cpuLine(t),
		fmt.Sprintf("futex wakes %s, %.0f%% of them woke nobody (returned 0); those are %.0f%% of all the thread's calls",
			rate(float64(wakes)/o.Seconds), pct(n, float64(wakes)), pct(n, float64(t.calls()))),
	}
	if waits := futexWaits(o); waits == 0 {
		ev = append(ev, "no thread of this process waits on a futex: the waiters are in another process, on memory they share")
	} else {
		ev = append(ev, fmt.Sprintf("threads of this process wait on a futex %s", rate(float64(waits)/o.Seconds)))
	}
	v.Evidence = append(ev, stackLine(t)...)
	v.Advice = "wake only when someone waits: keep a waiters count or a contended state in the futex word (as glibc's mutex does) and call FUTEX_WAKE only when it says so; " +
		"if the waiters are woken but find nothing to do, hand them work in batches or let them spin briefly before sleeping"
	return v
}

// futexWaits counts the process's futex waits.
func futexWaits(o *Observation) uint64 {
	var n uint64
	for i := range o.Threads {
		if s := o.Threads[i].syscall("futex"); s != nil {
			for _, op := range s.Ops {
				if strings.HasPrefix(op.Name, "WAIT") || op.Name == "LOCK_PI" || op.Name == "LOCK_PI2" {
					n += op.Count
				}
			}
		}
	}
	return n
}
