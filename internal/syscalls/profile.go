package syscalls

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"time"

	pyebpf "github.com/cpuwhy/cpuwhy/internal/stack/python/ebpf"
	"github.com/cpuwhy/cpuwhy/internal/sys"
)

// Mechanism names how a profile was gathered.
type Mechanism string

// The mechanisms, as accepted by --mechanism.
const (
	EBPF   Mechanism = "ebpf"
	Ptrace Mechanism = "ptrace"
)

// NoFD is Key.FD for a syscall that takes no file descriptor first.
const NoFD = -1

// Key is the unit of aggregation: one thread, one syscall, one result and,
// for syscalls whose first argument is a file descriptor, one fd.
type Key struct {
	TID   int
	Nr    int // syscall number on the target's architecture
	Errno int // 0 for success, else the positive errno
	FD    int // NoFD unless the syscall takes an fd first
	// Zero marks a success that returned 0: nothing read, no event
	// ready, a poll's timeout. A loop spinning on nothing shows there,
	// where a server doing work gets counts back.
	Zero bool
	// Op is futex's operation ("WAKE", "WAIT", ... as FUTEX_* names it
	// without the prefix), "" for other syscalls and when the tracer did
	// not record it. A WAKE that returned 0 woke nobody, a WAIT that
	// returned 0 was woken: only the op tells them apart.
	Op string
}

// ExitedTID is the TID of the keys of threads that exited during the
// window when there were too many to keep apart (a thread per request
// over a long window): their calls are counted together, under
// ExitedName.
const (
	ExitedTID  = 0
	ExitedName = "exited threads"
)

// FutexOps names futex's operations by their number (FUTEX_CMD_MASK of
// its second argument, include/uapi/linux/futex.h).
var FutexOps = map[int]string{
	0: "WAIT", 1: "WAKE", 2: "FD", 3: "REQUEUE", 4: "CMP_REQUEUE", 5: "WAKE_OP",
	6: "LOCK_PI", 7: "UNLOCK_PI", 8: "TRYLOCK_PI", 9: "WAIT_BITSET", 10: "WAKE_BITSET",
	11: "WAIT_REQUEUE_PI", 12: "CMP_REQUEUE_PI", 13: "LOCK_PI2",
}

// FutexOp names futex operation op, or "op N" for one unknown here.
func FutexOp(op int) string {
	if name, ok := FutexOps[op]; ok {
		return name
	}
	return "op " + strconv.Itoa(op)
}

// HistBuckets is the number of log2 buckets of a latency histogram:
// bucket i counts calls of [2^i, 2^(i+1)) nanoseconds, the last one
// everything longer (2^39 ns is about 9 minutes).
const HistBuckets = 40

// Stat is what is known of the calls of one Key.
type Stat struct {
	Count   uint64 // every call
	Timed   uint64 // calls whose duration was measured
	TotalNs uint64 // sum of the measured durations
	Hist    [HistBuckets]uint64
	// Bytes is the sum of the positive return values: the bytes moved,
	// for the read and write calls (meaningless for the others).
	Bytes uint64
}

// Add merges o into s.
func (s *Stat) Add(o *Stat) {
	s.Count += o.Count
	s.Timed += o.Timed
	s.TotalNs += o.TotalNs
	s.Bytes += o.Bytes
	for i := range s.Hist {
		s.Hist[i] += o.Hist[i]
	}
}

// Observe records one timed call of d nanoseconds.
func (s *Stat) Observe(d uint64) {
	s.Timed++
	s.TotalNs += d
	s.Hist[Bucket(d)]++
}

// Bucket is the histogram bucket of a duration in nanoseconds; the BPF
// program computes the same.
func Bucket(ns uint64) int {
	if ns == 0 {
		return 0
	}
	b := bits.Len64(ns) - 1
	if b >= HistBuckets {
		return HistBuckets - 1
	}
	return b
}

// StackID names a user stack recorded at syscall entry.
type StackID int64

// Profile is the result of tracing one process for a window.
type Profile struct {
	PID       int
	Mechanism Mechanism
	Start     time.Time
	Duration  time.Duration
	Stats     map[Key]*Stat
	// Threads names every thread seen, by TID (comm).
	Threads map[int]string
	// Dropped counts calls not aggregated because a table was full.
	Dropped uint64
	// Folded counts the threads that exited during the window whose
	// calls are counted together under ExitedTID.
	Folded int
	// Ended says why the window ended early (the target exited); empty
	// when it ran its course.
	Ended string
	// Slowdown is the target's measured slowdown under this mechanism
	// (ptrace: the ratio of its syscall rate traced to untraced), 0 when not
	// measured.
	Slowdown float64
	// Stacks holds, when asked for, the user stacks seen at syscall entry
	// for the hottest (thread, syscall) pairs: program counters, innermost
	// first.
	Stacks map[StackKey][]StackSample
	// Notes are things the report must say (partial stacks, sampling).
	Notes []string
	// Counting says whether every call was counted or calls were counted
	// in slices of the window (Stats then holds the calls counted, which
	// Summarize scales); nil for a tracer that counts every call.
	Counting *Counting
}

// StackKey names the calls a set of stacks was recorded for.
type StackKey struct {
	TID int
	Nr  int
}

// StackSample is one distinct stack and how often it was seen.
type StackSample struct {
	PCs   []uint64
	Count uint64
	// Chain is the Python frame chain the thread had at those calls, as
	// the walk of package python/ebpf recorded it (a record ParseChain
	// reads), when Options.Chains asked for it and the thread ran
	// Python: what names the Python functions of a stack that the
	// frame-pointer walk could not take through the interpreter. Its
	// frames are the target's bytes, to be checked as such.
	Chain []byte
}

// Options shape a trace.
type Options struct {
	// Duration of the window; the trace also ends with ctx or the target.
	Duration time.Duration
	// TimeEvery measures the duration of one call in N per thread (1: every
	// call; 0: none).
	TimeEvery int
	// MaxKeys bounds the aggregation table.
	MaxKeys int
	// Stacks records user stacks at syscall entry for the hottest pairs.
	Stacks bool
	// Chains, with Stacks, has the eBPF tracer read each stack's Python
	// frame chain with it (StackSample.Chain), by the walk of package
	// python/ebpf linked into its program; nil (or a target that runs
	// no CPython) reads none, and the walk is not loaded. The ptrace
	// tracer ignores it.
	Chains ChainSource
	// Exact counts every call however fast the target makes them; by
	// default a tracer that can counts a target making more than
	// SampleAbove calls a second in slices of the window (counting.go).
	Exact bool
	// Ready, when set, is called once the tracer is set up (BPF programs
	// loaded and verified), just before it starts counting; the window
	// starts when it returns. It may block: the diagnosis lines its
	// instruments up on it.
	Ready func()
}

// ChainSource is what the tracer's Python walk needs of the target's
// interpreter: the offsets of its version, and which thread state each
// thread (by the host's id) runs, read again as threads come.
type ChainSource interface {
	// WalkLayout is the offsets of the interpreter's version; an error
	// says the chains are not to be read in the kernel (turned off).
	WalkLayout() (pyebpf.Layout, error)
	// WalkThreads is called when the trace starts and then at each poll
	// of the target (100 ms); it may read the thread states again.
	WalkThreads() map[int]pyebpf.Thread
}

// Defaults for Options.
const (
	DefaultDuration  = 3 * time.Second
	DefaultTimeEvery = 16
	DefaultMaxKeys   = 16384
)

// Limits of Options, which Validate enforces: a value past them is a
// mistake to refuse, not a reason to try another mechanism.
const (
	// KeysLimit bounds MaxKeys. A process makes a few hundred (thread,
	// syscall, result, fd) keys, SoftEther's NAT thread over 2,000 sockets
	// some thousands; a table of 2^20 is 64 times the default. The BPF
	// table's buckets (16 MB at the limit) are allocated when it is
	// created, its values (344 bytes per key per CPU) as keys arrive, and
	// past 2^31 the kernel refuses the table outright.
	KeysLimit = 1 << 20
	// TimeEveryLimit bounds TimeEvery: one call in a million is already
	// too few timed to measure anything, and the eBPF tracer's timing
	// period (a slice per TimeEvery slices) must stay a valid duration.
	TimeEveryLimit = 1_000_000
)

// ErrOptions is wrapped by the error of a Tracer given Options outside
// their limits.
var ErrOptions = errors.New("invalid trace options")

// Validate checks o against the limits. A Tracer calls it before it
// touches the kernel: an absurd value must fail as itself, not surface as
// a kernel error that reads like a missing feature.
func (o Options) Validate() error {
	switch {
	case o.MaxKeys < 0 || o.MaxKeys > KeysLimit:
		return fmt.Errorf("%w: MaxKeys %d is not between 0 (the default) and %d", ErrOptions, o.MaxKeys, KeysLimit)
	case o.TimeEvery < 0 || o.TimeEvery > TimeEveryLimit:
		return fmt.Errorf("%w: TimeEvery %d is not between 0 and %d", ErrOptions, o.TimeEvery, TimeEveryLimit)
	case o.Duration < 0:
		return fmt.Errorf("%w: Duration %v is negative", ErrOptions, o.Duration)
	}
	return nil
}

// Tracer gathers a Profile of one process (every thread, including those
// started during the window).
type Tracer interface {
	Trace(ctx context.Context, pid int, opts Options) (*Profile, error)
}

// ErrNotSupported is returned by a Tracer whose mechanism this kernel or
// these privileges cannot use; the caller falls back to another.
var ErrNotSupported = sys.ErrNotSupported
