package stack

import (
	"time"

	"github.com/cpuwhy/cpuwhy/internal/proc"
	pyebpf "github.com/cpuwhy/cpuwhy/internal/stack/python/ebpf"
	"github.com/cpuwhy/cpuwhy/internal/unwind"
)

// Runtime is one language runtime's knowledge of processes that run it.
type Runtime interface {
	// Name is the runtime's name, and the Kind of the frames it names.
	Name() Kind
	// Attach returns the runtime's view of the process, or nil (and no
	// error) when the process does not run it. It must not stop or
	// slow the process; its reads of the process's memory and files
	// are of hostile input.
	Attach(p Process) (Instance, error)
}

// Process is what a runtime may look at of a target.
type Process struct {
	PID   int     // as the host sees it
	NsPID int     // as the process's own PID namespace sees it (its /tmp/perf-NSPID.map)
	FS    proc.FS // the host's /proc; the target's files through FS.PIDPath(PID, "root")
	Maps  []proc.Mapping
	Mem   unwind.Memory
	// NoAttach forbids asking the process itself for anything (HotSpot's
	// attach mechanism, which makes the JVM start a thread and write a
	// file): only what can be read of it may be used.
	NoAttach bool
}

// Instance is a runtime's view of one process.
type Instance interface {
	// Expand names or replaces the user frames of one sample of thread
	// tid, innermost first, pcs[i] the address of frames[i]: it names
	// code nothing else named (JIT code in anonymous memory), or
	// replaces an interpreter's frames by the functions it was running.
	// It returns the frames (frames itself when it changed nothing).
	Expand(tid int, pcs []uint64, frames []Frame) []Frame
	// Sync is called when the process's mappings changed.
	Sync(maps []proc.Mapping)
	// Notes says what went wrong that a user should know (a map that was
	// damaged or too large), once each.
	Notes() []string
	// Detach lets the process go.
	Detach()
}

// AddressNamer is implemented by an Instance whose Expand names only
// frames the symbolizer left without a function, each from its address
// and the instance's own table alone (a JIT's perf map), and keeps
// nothing of a sample whose frames it names none of: given the same
// addresses, Expand gives the same frames until NamesVersion changes.
// A caller may then keep the frames of a stack of addresses
// (Resolver.Steady).
type AddressNamer interface {
	NamesVersion() uint64
}

// CodeUnwinder is implemented by an Instance that knows how to unwind
// code of its runtime that has no call frame information of its own,
// such as a trampoline copied into anonymous memory, where the
// frame-pointer fallback would lose the caller. UnwindTable returns the
// call frame information for pc, and the bias to take from pc to look it
// up, as unwind.Lookup does; false when pc is not such code.
type CodeUnwinder interface {
	UnwindTable(pc uint64) (table *unwind.Table, bias uint64, ok bool)
}

// StackExpander is implemented by an Instance that names frames from
// what the frames hold on the stack (V8 keeps the function a JavaScript
// frame runs at a fixed place from its frame pointer). For a sample the
// resolver unwound itself, ExpandStack is called instead of Expand, with
// each frame's frame pointer (fps[i], 0 when unknown) and the copy of
// the stack taken with the sample; Expand still names the samples given
// as addresses alone (Leaf, syscalls --stacks).
type StackExpander interface {
	ExpandStack(tid int, pcs, fps []uint64, stack unwind.Memory, frames []Frame) []Frame
}

// LiveReader is implemented by an Instance that reads the process's live
// state when it expands a sample (an interpreter's current frames), not
// tables that stay true: the sample must reach it while it is fresh.
type LiveReader interface {
	ReadsLiveState() bool
}

// EventReader is implemented by an Instance that can read what it needs
// of each sample in the kernel as the sample is taken, by a BPF program
// the sampling events run (an interpreter's frame chain): it need not
// then read live state (LiveReader) when the sample is named.
type EventReader interface {
	// ReadAtEvents loads the program; an error says it cannot (no BPF
	// here), and the instance reads as it did without.
	ReadAtEvents() error
	// AttachEvent attaches the program to one sampling event of the
	// process, a perf event's file descriptor, before it is enabled.
	AttachEvent(fd int) error
	// SampleTime says when the sample the next Expand names was taken,
	// on the samples' clock (sample.Sample.Time).
	SampleTime(t uint64)
}

// ChainWalker is implemented by an Instance whose frame chains a BPF
// program other than its own can read, by the walk its package links into
// that program (package python/ebpf's): the syscall tracer's, at each
// call whose stack it takes, where a frame-pointer walk does not get
// through the interpreter's C frames. The layout and the threads are what
// the walk reads by (syscalls.ChainSource); KernelChain hands the next
// Expand the chain read with the stack it names (a record of the walk,
// which Expand checks as the target's bytes it is), and that Expand puts
// its Python frames in the stack the way it does for a sample's chain.
type ChainWalker interface {
	WalkLayout() (pyebpf.Layout, error)
	WalkThreads() map[int]pyebpf.Thread
	KernelChain(rec []byte)
}

// LockSampler is implemented by an Instance of an interpreter with a
// global lock that lets one thread at a time run (CPython's GIL), that
// reads at each sample it names which thread holds it.
type LockSampler interface {
	LockHolders() LockHolders
	// WatchLock reads the lock's state every interval, apart from the
	// samples, until stop is called: samples are of threads on a CPU,
	// and a thread that holds the lock off a CPU is seen by the timer.
	// LockHolders then counts those readings.
	WatchLock(interval time.Duration) (stop func())
}

// LockHolders is an interpreter's global lock counted over samples, or
// over the readings of a timer (Every).
type LockHolders struct {
	Lock     string        // what it is called ("the GIL")
	Every    time.Duration // the timer's interval; 0: read at the samples
	Readings int           // samples (or ticks) with its state read
	Held     map[int]int   // of those, held by each thread (the host's id)
	Free     int           // of those, held by none
	Unknown  int           // of those, held by a thread not known then
	// Err says why it was never read (Readings 0).
	Err string
}

// runtimes are the registered runtimes, tried in order.
var runtimes []Runtime

// Register adds a runtime; each runtime's package calls it from init.
func Register(r Runtime) { runtimes = append(runtimes, r) }

// Registered returns the registered runtimes.
func Registered() []Runtime { return runtimes }
