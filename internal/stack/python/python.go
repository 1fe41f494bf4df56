package python

import (
	"container/list"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/stack"
	"github.com/cpuwhy/cpuwhy/internal/stack/python/ebpf"
)

// Kind is the Kind of the frames this package names.
const Kind stack.Kind = "python"

// Truncated is the function of the frame put where a thread's Python
// stack was cut at maxFrames.
const Truncated = "[Python stack truncated]"

// rereadInterval bounds how often the thread states are read again for
// a thread that has none known: a thread that runs native code only
// (or one started since) must not cost a walk of them at every sample.
const rereadInterval = 100 * time.Millisecond

// maxCodes bounds the code objects whose names are kept.
const maxCodes = 4096

func init() { stack.Register(Runtime{}) }

// EnvNoBPF, set to 1, has the chains read live as with Runtime.LiveOnly:
// to compare the two (bench/recordcost), or on a host where the kernel's
// reading misbehaves.
const EnvNoBPF = "CPUWHY_PYTHON_NO_BPF"

// Runtime is CPython 3.8 to 3.13.
type Runtime struct {
	// LiveOnly has the frame chains of samples read from the live
	// process when they are named, never in the kernel at the sample
	// (ReadAtEvents fails): what happens where BPF cannot be used.
	LiveOnly bool
}

// Name is Kind.
func (Runtime) Name() stack.Kind { return Kind }

// Attach finds the interpreter in p's mappings and checks that the
// layout of its version fits what its memory holds. A process without
// CPython gets nil; one whose interpreter cannot be read, an error the
// resolver turns into a note (its frames stay native).
func (rt Runtime) Attach(p stack.Process) (stack.Instance, error) {
	interp, err := findInterpreter(p.FS, p.PID, p.Maps)
	if err != nil || interp == nil {
		return nil, err
	}
	minor, err := interp.version(p.Mem)
	if err != nil {
		return nil, err
	}
	l, ok := layouts[minor]
	if !ok || interp.syms.runtime == 0 {
		return nil, fmt.Errorf("CPython 3.%d (%s) is not a version cpuwhy knows the memory layout of (3.8 to 3.13)", minor, interp.module)
	}
	in := &instance{
		pid: p.PID, nspid: p.NsPID, fs: p.FS,
		r:       reader{mem: p.Mem, l: l, types: interp.syms.types},
		runtime: interp.syms.runtime, module: interp.module,
		codes: newCodeCache(maxCodes), pthreadTID: -1, noKernel: rt.LiveOnly || os.Getenv(EnvNoBPF) == "1",
	}
	if in.nspid == 0 {
		in.nspid = in.pid
	}
	if err := in.r.check(interp.syms); err != nil {
		return nil, fmt.Errorf("CPython 3.%d in %s does not hold what its version's layout says: %w", minor, interp.module, err)
	}
	in.findGIL()
	in.refresh()
	return in, nil
}

// findGIL finds the GIL and reads it once: a GIL the layout does not fit
// is never counted (LockHolders says why).
func (in *instance) findGIL() {
	gil, err := in.r.gilAddress(in.runtime)
	if err == nil && in.r.l.GILLocked-in.r.l.GILLastHolder != 8 {
		// The kernel's walk reads locked 8 bytes after last_holder.
		err = fmt.Errorf("the layout of 3.%d has the GIL's locked %d bytes after last_holder, not 8", in.r.l.Minor, in.r.l.GILLocked-in.r.l.GILLastHolder)
	}
	if err == nil {
		_, _, err = in.r.gilState(gil)
	}
	if err != nil {
		in.gilCount.err = err
		return
	}
	in.gil = gil
}

// instance reads the Python stacks of one process.
type instance struct {
	pid, nspid int
	fs         proc.FS
	r          reader
	runtime    uint64
	module     string

	// byTID is the thread state of each thread (by the host's thread
	// id), as last read; pthreadTID is where glibc's (or musl's) struct
	// pthread keeps the thread's id, found on 3.8-3.10, where the
	// thread state holds only pthread_self(); -1 until found.
	byTID      map[int]thread
	refreshed  time.Time
	pthreadTID int
	threadsBuf []thread
	tidsBuf    []int
	nsOf       map[int]int // a thread's id in the process's namespace, by the host's

	// kernel holds the chains read in the kernel at the samples, once
	// ReadAtEvents loaded its program; nil: each chain is read when its
	// sample is named. noKernel forbids loading it.
	kernel   *kernelChains
	noKernel bool
	at       uint64 // the time of the sample the next Expand names (SampleTime); 0: unknown
	// given is the chain read in the kernel with the stack the next
	// Expand names (KernelChain), when hasGiven; givenBad counts those
	// that could not be parsed.
	given    ebpf.Chain
	hasGiven bool
	givenBad int

	// gil is the address of the GIL (0: not found, gilCount.err says
	// why), counted at each sample named; tidOf is the host's id of the
	// thread of each thread state, as last read.
	gil      uint64
	gilCount gilCount
	watched  *gilWatch // the GIL read on a timer, once stopped
	tidOf    map[uint64]int

	codes *codeCache
	py    []pyframe
	out   []stack.Frame

	// What the notes say: samples with interpreter frames, those named,
	// those of a thread without a thread state, those cut, those that
	// could not be read (and the first reason).
	samples, named, noThread, cut, failed int
	firstErr                              error
	unmatched                             bool // threads could not be matched (3.8-3.10)
	gone                                  bool
}

// Expand replaces each of the interpreter's eval loop frames by the
// Python frames that call of the loop runs, and drops the interpreter's
// call machinery between them (see the package documentation). A sample
// of one address (the leaf the caller names after the recording) is
// left alone: nothing says which Python frames ran it then.
// ReadsLiveState says whether the Python frames of a sample are read
// from the interpreter's memory when it is expanded, and are those of
// that moment, which must be as close to the sample's as can be: unless
// the kernel reads each sample's chain (ReadAtEvents).
func (in *instance) ReadsLiveState() bool { return in.kernel == nil }

func (in *instance) Expand(tid int, pcs []uint64, frames []stack.Frame) []stack.Frame {
	at := in.at
	in.at = 0 // said for this sample only
	given := in.hasGiven
	in.hasGiven = false
	if in.gone {
		return frames
	}
	if given {
		// A stack taken with its chain (a syscall's): the chain says
		// which Python frames ran, even where the native walk did not
		// reach the eval loop, or has one address only.
		return in.expandGiven(frames)
	}
	if len(pcs) <= 1 || !slices.ContainsFunc(frames, isEval) {
		return frames
	}
	in.samples++
	t, ok := in.thread(tid)
	if !ok {
		in.noThread++
		return frames
	}
	var err error
	var cut bool
	if c := in.fromKernel(tid, at); c != nil {
		in.py, cut, err = in.r.chain(c.frames, c.flags&ebpf.More != 0, in.py[:0])
		in.countGIL(&c.gil)
	} else {
		in.py, cut, err = in.r.frames(t.addr, t.native, in.py[:0])
		in.countGIL(nil)
	}
	if errors.Is(err, errMoved) && time.Since(in.refreshed) >= rereadInterval && in.refresh() {
		if t, ok = in.byTID[tid]; ok {
			in.py, cut, err = in.r.frames(t.addr, t.native, in.py[:0])
		}
	}
	if errors.Is(err, errMoved) || !ok {
		in.noThread++ // its thread state is another thread's now
		return frames
	}
	out, _ := in.name(frames, cut, err)
	return out
}

// expandGiven puts in frames the Python frames of the chain KernelChain
// gave.
func (in *instance) expandGiven(frames []stack.Frame) []stack.Frame {
	if len(in.given.Frames) == 0 {
		return frames
	}
	in.samples++
	py, cut, err := in.r.chain(in.given.Frames, in.given.Flags&ebpf.More != 0, in.py[:0])
	in.py = py
	if err != nil {
		in.fail(err)
		return frames
	}
	// Such a stack was walked by frame pointers, which the interpreter's
	// C code does not keep: a walk that reached an address no object
	// maps had lost its way (a register holding data), and what it found
	// from there on are not the thread's callers. The chain says who
	// they are.
	walked := frames
	for i, f := range frames {
		if f.Kind == stack.Native && f.Module == stack.UnknownModule {
			walked = frames[:i]
			break
		}
	}
	if out, ok := in.name(walked, cut, nil); ok {
		return out
	}
	return frames // the frames could not be named: as they were
}

// name names the Python frames read (in.py), cut or not, and merges them
// into frames; err is that of reading them. ok says it named them.
func (in *instance) name(frames []stack.Frame, cut bool, err error) (_ []stack.Frame, ok bool) {
	if err != nil {
		in.fail(err)
		return frames, false
	}
	groups := in.out[:0]
	var bounds []int
	for _, f := range in.py {
		fr, err := in.frame(f)
		if err != nil {
			in.fail(err)
			return frames, false
		}
		groups = append(groups, fr)
		if f.entry {
			bounds = append(bounds, len(groups))
		}
	}
	in.out = groups
	if cut {
		in.cut++
	}
	in.named++
	return merge(frames, groups, bounds, cut, in.module), true
}

// WalkLayout is what the syscall tracer's walk of the chains reads
// (stack.ChainWalker); an error when reading chains in the kernel is
// turned off (EnvNoBPF, Runtime.LiveOnly): syscall stacks then have
// their chains read from the live process when they are named, after
// the trace, as before.
func (in *instance) WalkLayout() (ebpf.Layout, error) {
	if in.noKernel {
		return ebpf.Layout{}, fmt.Errorf("the Python frame chains of syscall stacks are read from the live process when named, not in the kernel with each stack: turned off (%s=1 or Runtime.LiveOnly)", EnvNoBPF)
	}
	return kernelLayout(in.r.l), nil
}

// WalkThreads is the thread state of each thread, by the host's id, read
// again when they were read rereadInterval ago or more: the syscall
// tracer asks at each poll of the target, for the threads started since.
func (in *instance) WalkThreads() map[int]ebpf.Thread {
	if !in.gone && time.Since(in.refreshed) >= rereadInterval {
		in.refresh()
	}
	threads := make(map[int]ebpf.Thread, len(in.byTID))
	for tid, t := range in.byTID {
		threads[tid] = ebpf.Thread{TState: t.addr, Native: t.native}
	}
	return threads
}

// KernelChain gives the next Expand the chain the syscall tracer read
// with the stack it names: a record of the walk, nil for none. A
// record that cannot be parsed is counted, and the stack keeps its
// frames.
func (in *instance) KernelChain(rec []byte) {
	in.hasGiven = false
	if rec == nil {
		return
	}
	if err := ebpf.ParseChain(rec, &in.given); err != nil {
		in.givenBad++
		return
	}
	if in.given.Flags&(ebpf.Fault|ebpf.Moved) != 0 {
		return // the tracer keeps none of these; a record says so if it did
	}
	in.hasGiven = true
}

// fromKernel is the chain the kernel read at the sample being named, or
// nil (see kernelChains.take).
func (in *instance) fromKernel(tid int, at uint64) *storedChain {
	if in.kernel == nil {
		return nil
	}
	if at == 0 {
		// Not said when the sample was taken: not a sample of the
		// recording (which says it of every one).
		in.kernel.missed++
		return nil
	}
	return in.kernel.take(tid, at)
}

// fail counts a sample whose Python frames could not be read.
func (in *instance) fail(err error) {
	in.failed++
	if in.firstErr == nil && err != nil {
		in.firstErr = err
	}
}

// frame names one Python frame, through the cache of code objects.
func (in *instance) frame(f pyframe) (stack.Frame, error) {
	k, err := in.r.codeHead(f.code)
	if err != nil {
		return stack.Frame{}, err
	}
	c, ok := in.codes.get(k)
	if !ok {
		if c, err = in.r.code(k); err != nil {
			return stack.Frame{}, err
		}
		in.codes.add(k, c)
	}
	return stack.Frame{Kind: Kind, Function: c.name, File: c.file, Line: lineOf(in.r.l.linetable(), c.table, c.first, f.at)}, nil
}

// thread finds the thread state of thread tid, reading them again (not
// more often than rereadInterval) when it has none.
func (in *instance) thread(tid int) (thread, bool) {
	if t, ok := in.byTID[tid]; ok {
		return t, true
	}
	if time.Since(in.refreshed) < rereadInterval || !in.refresh() {
		return thread{}, false
	}
	t, ok := in.byTID[tid]
	return t, ok
}

// refresh reads the thread states again and matches them to the
// process's threads: by native_thread_id (3.11+), else by the id in the
// struct pthread that thread_id points to. It reports whether it read
// them.
func (in *instance) refresh() bool {
	in.refreshed = time.Now()
	ts, err := in.r.threads(in.runtime, in.threadsBuf[:0])
	in.threadsBuf = ts
	if err != nil {
		in.fail(fmt.Errorf("reading the thread states: %w", err))
		return false
	}
	hostOf, err := in.tids()
	if err != nil {
		in.gone = errors.Is(err, proc.ErrGone)
		in.fail(err)
		return false
	}
	by := make(map[int]thread, len(ts))
	tidOf := make(map[uint64]int, len(ts))
	for _, t := range ts {
		ns := int(t.native)
		if in.r.l.ThreadNativeID < 0 {
			ns = in.pthreadID(t, hostOf)
		}
		if host, ok := hostOf[ns]; ok && ns != 0 {
			by[host] = t
			tidOf[t.addr] = host
		}
	}
	in.byTID, in.tidOf = by, tidOf
	in.pushThreads()
	return true
}

// tids maps the ids of the process's threads in its own PID namespace
// (what the interpreter knows them by) to the host's (what samples
// carry).
func (in *instance) tids() (map[int]int, error) {
	tids, err := in.fs.Tasks(in.pid, in.tidsBuf[:0])
	in.tidsBuf = tids
	if err != nil {
		return nil, err
	}
	hostOf := make(map[int]int, len(tids))
	seen := make(map[int]int, len(tids))
	for _, tid := range tids {
		ns := tid
		if in.nspid != in.pid {
			// A thread's id in its namespace is read once: a process
			// of thousands of threads must not cost as many reads of
			// /proc at every refresh.
			var ok bool
			if ns, ok = in.nsOf[tid]; !ok {
				ns = in.fs.Identity(tid).NsPID
			}
		}
		seen[tid] = ns
		hostOf[ns] = tid
	}
	in.nsOf = seen // the threads gone are forgotten
	return hostOf, nil
}

// glibcPthreadTID is where glibc 2.x on x86-64 keeps a thread's id in
// its struct pthread; maxPthreadScan bounds the search for it in other
// C libraries (musl keeps it near the start).
const (
	glibcPthreadTID = 0x2d0
	maxPthreadScan  = 0x800
)

// pthreadID finds the kernel's id of the thread of t, on 3.8-3.10,
// from the struct pthread its thread_id points to. The offset of the id
// there is found once: glibc's, else the first offset at which every
// thread state's struct pthread holds one of the process's thread ids.
func (in *instance) pthreadID(t thread, hostOf map[int]int) int {
	if in.pthreadTID < 0 {
		in.pthreadTID = in.findPthreadTID(hostOf)
		if in.pthreadTID < 0 {
			in.unmatched = true
			return 0
		}
	}
	b, err := in.r.read(t.pthread+uint64(in.pthreadTID), 4)
	if err != nil {
		return 0
	}
	return int(int32(u32(b, 0)))
}

func (in *instance) findPthreadTID(hostOf map[int]int) int {
	var blocks [][]byte
	for _, t := range in.threadsBuf {
		b, err := in.r.read(t.pthread, maxPthreadScan)
		if err != nil {
			return -1
		}
		blocks = append(blocks, append([]byte(nil), b...))
	}
	if len(blocks) == 0 {
		return -1
	}
	fits := func(off int) bool {
		for _, b := range blocks {
			if _, ok := hostOf[int(int32(u32(b, off)))]; !ok || u32(b, off) == 0 {
				return false
			}
		}
		return true
	}
	if fits(glibcPthreadTID) {
		return glibcPthreadTID
	}
	for off := 0; off+4 <= maxPthreadScan; off += 4 {
		if fits(off) {
			return off
		}
	}
	return -1
}

// Sync notices that the interpreter is no longer mapped (the process
// ran exec).
func (in *instance) Sync(maps []proc.Mapping) {
	in.gone = !slices.ContainsFunc(maps, func(m proc.Mapping) bool { return m.Path == in.module })
}

// Notes says what was left native, and why.
func (in *instance) Notes() []string {
	var notes []string
	v := fmt.Sprintf("CPython 3.%d", in.r.l.Minor)
	if in.failed > 0 {
		notes = append(notes, fmt.Sprintf("%d of %d samples in the %s interpreter keep its native frames: its memory could not be read as that version's (first: %v)", in.failed, in.samples, v, in.firstErr))
	}
	if in.unmatched {
		notes = append(notes, fmt.Sprintf("the Python threads of process %d could not be matched to its threads (the id in struct pthread was not found): %d samples keep the interpreter's native frames", in.pid, in.noThread))
	}
	if in.kernel != nil {
		notes = append(notes, in.kernel.notes()...)
	}
	if in.givenBad > 0 {
		notes = append(notes, fmt.Sprintf("%d Python frame chains read with syscall stacks could not be parsed", in.givenBad))
	}
	if in.cut > 0 {
		notes = append(notes, fmt.Sprintf("%d samples had Python stacks deeper than %d frames: cut there, marked %s", in.cut, maxFrames, Truncated))
	}
	return notes
}

// Detach unloads the program that reads chains in the kernel; the
// events it is attached to hold it until they close.
func (in *instance) Detach() {
	if in.kernel != nil {
		in.kernel.w.Close()
		in.kernel = nil
	}
}

// codeCache keeps the names of the code objects most recently seen.
type codeCache struct {
	max   int
	order *list.List // of codeKey, most recent first
	byKey map[codeKey]codeEntry
}

type codeEntry struct {
	c  *code
	el *list.Element
}

func newCodeCache(max int) *codeCache {
	return &codeCache{max: max, order: list.New(), byKey: map[codeKey]codeEntry{}}
}

func (c *codeCache) get(k codeKey) (*code, bool) {
	e, ok := c.byKey[k]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(e.el)
	return e.c, true
}

func (c *codeCache) add(k codeKey, v *code) {
	if _, ok := c.byKey[k]; ok {
		return
	}
	if c.order.Len() >= c.max {
		old := c.order.Back()
		c.order.Remove(old)
		delete(c.byKey, old.Value.(codeKey))
	}
	c.byKey[k] = codeEntry{c: v, el: c.order.PushFront(k)}
}
