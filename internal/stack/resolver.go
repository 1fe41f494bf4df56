package stack

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/objfile"
	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/sample"
	"github.com/cpuwhy/cpuwhy/internal/symbol"
	"github.com/cpuwhy/cpuwhy/internal/sys"
	"github.com/cpuwhy/cpuwhy/internal/unwind"
)

// MaxFrames bounds an unwound user stack.
const MaxFrames = 128

// maxImages bounds the programs a resolver keeps the mappings, unwinding
// tables and names of: the one the process runs and those it ran before
// its last execs. Samples of a program older than these are unwound and
// named by nothing, and a note says so; they arrive at most a drain of
// the rings late, so only a process that runs exec several times in one
// has any.
const maxImages = 4

// refreshInterval bounds how often the mappings are read again for an
// address outside them: a process that jumps to unmapped addresses (a
// corrupt stack) must not make cpuwhy read its maps at every sample.
const refreshInterval = 100 * time.Millisecond

// Options configure a Resolver.
type Options struct {
	FS        proc.FS
	NsPID     int      // the process's PID in its own namespace; 0: the same as the host's
	DebugDirs []string // extra places for debug files (--debug-dir)
	Kernel    bool     // name kernel frames (reads kallsyms)
	// Runtimes are the runtimes tried on the process; nil: Registered().
	Runtimes []Runtime
	// Memory reads the process's memory; nil: process_vm_readv.
	Memory unwind.Memory
	// NoAttach forbids runtimes to ask the process for its names
	// (--no-attach): see Process.NoAttach.
	NoAttach bool
	// Shared, when set, is what the resolvers of a long-lived process
	// share (the kernel's symbols, the objects' names); nil: this
	// resolver reads its own.
	Shared *Shared
}

// Resolver unwinds and names the stacks of one process. It is not safe
// for concurrent use.
//
// A process that runs exec runs another program at the same addresses:
// told of it (Exec), the resolver keeps the program before as it was
// mapped, and At selects, for each sample, the program it ran.
type Resolver struct {
	pid     int
	opts    Options
	mem     unwind.Memory
	objects *objfile.Opener
	sym     *symbol.Symbolizer
	ksyms   *sample.KernelSymbols
	u       unwind.Unwinder
	trace   unwind.Trace
	pcs     []uint64
	fps     []uint64
	stack   unwind.StackCopy // the last Unwind's
	frames  []Frame
	// walks are Unwind's last walks (walkAgain), nextWalk the one to
	// replace next.
	walks    []walk
	nextWalk int
	// askedRuntimes is set by lookup when the walk under way asked a
	// runtime for a table.
	askedRuntimes bool

	// images are the programs kept, oldest first, the last the one the
	// process runs; cur is the one At selected.
	images []*image
	cur    *image
	// forgotten stands for the programs older than those kept, which
	// nothing names; forgottenHits counts the samples that fell in them.
	forgotten     *image
	forgottenHits int

	kernel    map[uint64]Frame // names, by address
	instances []Instance
	events    []EventReader  // the instances that read samples in the kernel (Events)
	unwinders []CodeUnwinder // the instances that unwind code of their own
	namers    []AddressNamer // the instances that only name addresses
	// readsStacks is true when an instance may read more than a
	// stack's addresses (ReadsStacks).
	readsStacks bool
	notes       []string
	refreshed   time.Time
	// version counts the readings of the mappings and the execs: the
	// names of an address may change with either (Version).
	version uint64
}

// image is one program the process ran while it was resolved: the one
// it ran at New, then one per exec.
type image struct {
	gen  int    // the execs before it
	from uint64 // when the exec that began it ran, on the samples' clock; 0 for the first
	// The embedded reading is what it is unwound and named by: the
	// last reading of the process's mappings while it ran it; prev is
	// the one before, in case the last came after an exec the resolver
	// was not yet told of.
	reading
	prev reading
	// past names it once the process left it, by its own mappings; nil
	// while the process runs it, when the symbolizer names it.
	past *symbol.Image
	user map[uint64]Frame // names, by address
}

// reading is one reading of the process's mappings and their unwinding
// tables.
type reading struct {
	maps      []proc.Mapping
	space     *unwind.Space
	spaceErrs []error
	at        time.Duration // when, on the samples' clock (CLOCK_MONOTONIC)
}

// New reads the mappings of process pid and prepares to unwind and name
// its stacks. Runtimes that fail to attach are noted, not fatal.
func New(pid int, opts Options) (*Resolver, error) {
	maps, err := opts.FS.Maps(pid)
	if err != nil {
		return nil, fmt.Errorf("reading the mappings of %d: %w", pid, err)
	}
	r := &Resolver{
		pid:     pid,
		opts:    opts,
		mem:     opts.Memory,
		objects: objfile.NewOpener(opts.FS, pid),
		sym:     symbol.NewSymbolizer(symbol.Options{FS: opts.FS, DebugDirs: opts.DebugDirs, Tables: opts.Shared.symbolTables()}),
		kernel:  map[uint64]Frame{},
	}
	r.images = []*image{{user: map[uint64]Frame{}}}
	r.cur = r.live()
	if r.mem == nil {
		r.mem = unwind.ProcessMemory{Pid: pid}
	}
	if opts.Kernel {
		if opts.Shared != nil {
			r.ksyms, _ = opts.Shared.KernelSymbols(opts.FS)
		} else {
			r.ksyms, _ = sample.ReadKernelSymbols(opts.FS)
		}
	}
	r.build(maps)
	rts := opts.Runtimes
	if rts == nil {
		rts = Registered()
	}
	nspid := opts.NsPID
	if nspid == 0 {
		nspid = pid
	}
	for _, rt := range rts {
		in, err := rt.Attach(Process{PID: pid, NsPID: nspid, FS: opts.FS, Maps: maps, Mem: r.mem, NoAttach: opts.NoAttach})
		if err != nil {
			r.notes = append(r.notes, fmt.Sprintf("%s frames not named: %v", rt.Name(), err))
			continue
		}
		if in != nil {
			r.instances = append(r.instances, in)
			if u, ok := in.(CodeUnwinder); ok {
				r.unwinders = append(r.unwinders, u)
			}
			if a, ok := in.(AddressNamer); ok {
				r.namers = append(r.namers, a)
			} else {
				r.readsStacks = true
			}
		}
	}
	return r, nil
}

// live is the program the process runs.
func (r *Resolver) live() *image { return r.images[len(r.images)-1] }

// build makes the unwinding tables of maps, for the program the process
// runs.
func (r *Resolver) build(maps []proc.Mapping) {
	img := r.live()
	img.prev = img.reading
	img.reading = reading{maps: maps, at: sys.Monotonic()}
	if c := r.opts.Shared.unwindTables(); c != nil {
		img.space, img.spaceErrs = c.NewSpace(maps, r.objects.Identify, r.objects.OpenELF, r.mem)
	} else {
		img.space, img.spaceErrs = unwind.NewSpace(maps, r.objects.OpenELF, r.mem)
	}
	r.objects.Close() // the tables are read
	r.refreshed = time.Now()
	r.version++
}

// Exec tells the resolver that the process ran exec at time at (on the
// clock of At): what it ran before keeps the mappings last read, and the
// program it runs since is mapped by maps (read as soon as the exec was
// seen; nil when they could not be). Objects of the program before are
// opened by path from then on, since the process maps them no more: one
// replaced or deleted since cannot be named.
func (r *Resolver) Exec(at uint64, maps []proc.Mapping) {
	old := r.live()
	if old.at > time.Duration(at) {
		// Read again after the exec (a sample of the old program had
		// an address the reading before lacked): that reading is the
		// new program's. The one before is the old one's, if it too
		// did not come after; else nothing names the old program.
		if old.prev.space != nil && old.prev.at <= time.Duration(at) {
			old.reading = old.prev
		} else {
			old.reading = reading{}
			old.space, _ = unwind.NewSpace(nil, nil, nil)
		}
	}
	old.prev = reading{}
	// Names given while the resolver did not know of the exec may come
	// from the new program's objects: the old one's are given again,
	// by its own mappings.
	clear(old.user)
	old.past = r.sym.Image(r.pid, old.maps)
	r.images = append(r.images, &image{gen: old.gen + 1, from: at, user: map[uint64]Frame{}})
	r.remap(maps)
	if len(r.images) > maxImages {
		r.images[0] = nil
		r.images = r.images[1:]
	}
	r.cur = r.live()
	r.version++
}

// Version changes whenever the names Frames gives an address may have
// changed: the mappings read again, an exec, a runtime's table read
// again (AddressNamer.NamesVersion).
func (r *Resolver) Version() uint64 {
	v := r.version
	for _, a := range r.namers {
		v += a.NamesVersion()
	}
	return v
}

// ReadsStacks reports whether a runtime attached to the process may read
// more than the addresses of a stack (its copy, through the frame
// pointers Unwind found, or the process's live state): all but
// AddressNamers may.
func (r *Resolver) ReadsStacks() bool { return r.readsStacks }

// StackReach is how far into the stack copy the last Unwind had to
// look, in bytes from its start: up to the outermost frame's stack
// pointer, or a frame pointer's saved pair, whichever is deeper.
func (r *Resolver) StackReach() uint64 {
	base := r.stack.Base
	var reach uint64
	for _, f := range r.trace.Frames {
		if f.SP > base {
			reach = max(reach, f.SP-base)
		}
		if f.FP != 0 && f.FP+16 > base {
			reach = max(reach, f.FP+16-base)
		}
	}
	return min(reach, uint64(len(r.stack.Data)))
}

// Steady reports whether frames, as Frames gave them for some addresses,
// are what Frames would give for the same addresses, in the same
// generation, for as long as Version stays the same, with no effect on
// the resolver: no runtime but AddressNamers is attached, and none of the
// frames is anonymous code or was named by one (a perf map counts the
// samples it names, and reads itself again for anonymous code it cannot
// name). A caller may then count the next sample of those addresses
// without naming it again.
func (r *Resolver) Steady(frames []Frame) bool {
	if r.ReadsStacks() {
		return false
	}
	for _, f := range frames {
		switch {
		case f.Kind != Native && f.Kind != Kernel:
			return false
		case f.InUnmappedCode():
			return false
		}
	}
	return true
}

// At selects the program the process ran at time t, on the samples'
// clock (sample.Sample.Time), for the next Unwind, Frames and Native, and
// returns its generation: the execs the process ran before it. Callers
// that never call At, or Exec, work on the program the process runs.
func (r *Resolver) At(t uint64) int {
	// Every sample's time, whichever program it ran: a reader of
	// chains taken at the sample must not match it by an earlier one's.
	for _, e := range r.events {
		e.SampleTime(t)
	}
	i := sort.Search(len(r.images), func(i int) bool { return r.images[i].from > t }) - 1
	if i < 0 {
		// Before the oldest program kept: one that is no longer.
		r.forgottenHits++
		r.cur = r.forgottenImage(r.images[0].gen - 1)
		return r.cur.gen
	}
	r.cur = r.images[i]
	return r.cur.gen
}

// Generation selects the program of generation gen, as At returned it,
// and reports whether it is still kept: Native then names its addresses.
func (r *Resolver) Generation(gen int) bool {
	for _, img := range r.images {
		if img.gen == gen {
			r.cur = img
			return true
		}
	}
	r.cur = r.forgottenImage(gen)
	return false
}

// forgottenImage is a program nothing names, with generation gen.
func (r *Resolver) forgottenImage(gen int) *image {
	if r.forgotten == nil {
		space, _ := unwind.NewSpace(nil, nil, nil)
		r.forgotten = &image{reading: reading{space: space}, past: r.sym.Image(r.pid, nil)}
	}
	clear(r.forgotten.user) // nil: nothing is kept
	r.forgotten.gen = gen
	return r.forgotten
}

// refresh reads the mappings again, when the last reading is old enough:
// an address fell outside them (dlopen, a JIT, exec).
func (r *Resolver) refresh() bool {
	if time.Since(r.refreshed) < refreshInterval {
		return false
	}
	maps, err := r.opts.FS.Maps(r.pid)
	if err != nil {
		r.refreshed = time.Now()
		return false
	}
	r.remap(maps)
	return true
}

// remap makes maps the mappings of the program the process runs: its
// unwinding tables, its names (what was named at an address may be
// another object's now; the symbolizer reads the mappings again when
// next asked) and the runtimes' view. Nil maps (unread) leave the
// runtimes as they were.
func (r *Resolver) remap(maps []proc.Mapping) {
	r.build(maps)
	r.sym.Forget(r.pid)
	clear(r.live().user)
	if maps != nil {
		for _, in := range r.instances {
			in.Sync(maps)
		}
	}
}

// Unwind walks the user stack from regs through the copy of the stack,
// and returns the addresses of its frames, innermost first (valid until
// the next call), and why the walk ended.
func (r *Resolver) Unwind(regs unwind.Regs, stack unwind.StackCopy) ([]uint64, unwind.Stop) {
	img := r.cur
	if _, _, mapped := img.space.Lookup(regs.PC); !mapped && img == r.live() {
		// Only the program the process runs is read again: the
		// mappings of one it left are gone from /proc.
		r.refresh()
	}
	if !r.walkAgain(regs, stack) {
		mem := unwind.Memory(stack)
		r.trace.LogReads, r.askedRuntimes = true, false
		r.u.TraceInto(&r.trace, regs, mem, r.lookup, MaxFrames)
		r.keepWalk(regs)
	}
	r.pcs, r.fps = r.pcs[:0], r.fps[:0]
	for _, f := range r.trace.Frames {
		r.pcs = append(r.pcs, f.PC)
		r.fps = append(r.fps, f.FP)
	}
	r.stack = stack
	return r.pcs, r.trace.Stop
}

// walks are the last walks of Unwind and what each read, to be taken
// again for a sample from the same registers whose stack holds the same
// words there: a thread sampled in the same call (a syscall, a loop)
// again and again is walked once. Walking was a fifth of `cpuwhy
// record`'s CPU while sampling at 99 Hz. Not a walk that asked a
// runtime for a table (r.unwinders: code the objects have no table for),
// which may change between walks.
type walk struct {
	regs  unwind.Regs
	space *unwind.Space
	trace unwind.Trace
}

// maxWalks is how many walks Unwind keeps, replaced in turn.
const maxWalks = 16

// walkAgain takes a kept walk for regs and stack into r.trace when one
// read the same words.
func (r *Resolver) walkAgain(regs unwind.Regs, stack unwind.StackCopy) bool {
	space := r.cur.space
next:
	for i := range r.walks {
		w := &r.walks[i]
		if w.space != space || w.regs != regs {
			continue
		}
		for _, word := range w.trace.Read {
			off := word.Addr - stack.Base
			if word.Addr < stack.Base || off >= uint64(len(stack.Data)) || uint64(len(stack.Data))-off < 8 ||
				binary.LittleEndian.Uint64(stack.Data[off:]) != word.Value {
				continue next
			}
		}
		r.trace.Frames = append(r.trace.Frames[:0], w.trace.Frames...)
		r.trace.Read = append(r.trace.Read[:0], w.trace.Read...)
		r.trace.Stop, r.trace.Err = w.trace.Stop, w.trace.Err
		return true
	}
	return false
}

// keepWalk keeps the walk just made from regs, unless it ran out of the
// stack copy (another copy may be longer) or asked a runtime for a table.
func (r *Resolver) keepWalk(regs unwind.Regs) {
	if r.askedRuntimes || r.trace.Stop == unwind.StopMemory {
		return
	}
	if len(r.walks) < maxWalks {
		r.walks = append(r.walks, walk{})
	}
	w := &r.walks[r.nextWalk%len(r.walks)]
	r.nextWalk++
	w.regs, w.space = regs, r.cur.space
	w.trace.Frames = append(w.trace.Frames[:0], r.trace.Frames...)
	w.trace.Read = append(w.trace.Read[:0], r.trace.Read...)
	w.trace.Stop, w.trace.Err = r.trace.Stop, r.trace.Err
}

// lookup finds the call frame information for pc: the object's, or for
// code without any (anonymous memory, an object without CFI, memory
// mapped since the mappings were read) a runtime's.
func (r *Resolver) lookup(pc uint64) (*unwind.Table, uint64, bool) {
	table, bias, mapped := r.cur.space.Lookup(pc)
	if table != nil || r.cur != r.live() {
		return table, bias, mapped
	}
	if len(r.unwinders) > 0 {
		r.askedRuntimes = true
	}
	for _, u := range r.unwinders {
		if t, b, ok := u.UnwindTable(pc); ok {
			return t, b, true
		}
	}
	return table, bias, mapped
}

// Frames names one sample of thread tid: the kernel's addresses above
// the user stack's, both innermost first, user addresses past the first
// being return addresses. The result is valid until the next call.
func (r *Resolver) Frames(tid int, kernel, user []uint64) []Frame {
	r.frames = r.frames[:0]
	for _, pc := range kernel {
		r.frames = append(r.frames, r.KernelFrame(pc))
	}
	k := len(r.frames)
	for i, pc := range user {
		r.frames = append(r.frames, r.Native(pc, i > 0))
	}
	if r.cur != r.live() {
		// The runtimes know the program the process runs, not one it
		// left: its code nothing else named stays [anon].
		return r.frames
	}
	// The addresses of the last Unwind come with their frames: a
	// runtime that reads its frames from the stack gets them.
	walked := len(user) > 0 && len(user) == len(r.pcs) && &user[0] == &r.pcs[0]
	for _, in := range r.instances {
		if se, ok := in.(StackExpander); ok && walked {
			r.frames = append(r.frames[:k], se.ExpandStack(tid, user, r.fps, r.stack, r.frames[k:])...)
			continue
		}
		r.frames = append(r.frames[:k], in.Expand(tid, user, r.frames[k:])...)
	}
	return r.frames
}

// Leaf names the innermost user address of a sample of thread tid as
// Frames names it, runtimes included: the hottest instruction of a
// compute loop in JIT code is named by the runtime, not [anon]+0xADDR.
func (r *Resolver) Leaf(tid int, pc uint64) Frame {
	if fs := r.Frames(tid, nil, []uint64{pc}); len(fs) > 0 {
		return fs[0]
	}
	return r.Native(pc, false)
}

// Native names a user address, in the program selected (At). A caller's
// frame holds a return address, one past its call instruction, which may
// already belong to the next function or line: the call is named instead.
func (r *Resolver) Native(pc uint64, caller bool) Frame {
	at := pc
	if caller && at > 0 {
		at--
	}
	img := r.cur
	if f, ok := img.user[at]; ok {
		return f
	}
	var sf symbol.Frame
	if img.past != nil {
		sf = img.past.Symbolize(at)
	} else {
		sf, _ = r.sym.Symbolize(r.pid, at)
	}
	f := Frame{Kind: Native, Function: sf.Function, File: sf.File, Line: sf.Line, Module: sf.Module, Offset: sf.Offset, BuildID: sf.BuildID}
	switch {
	case !sf.Mapped:
		f.Module, f.Offset = UnknownModule, at
	case sf.Module == "" && f.Function == "":
		// Anonymous code, a JIT's: a runtime may name it; else the
		// address is all there is to print.
		f.Module, f.Offset = AnonModule, at
	}
	if img.user != nil {
		img.user[at] = f
	}
	return f
}

// KernelFrame names a kernel address.
func (r *Resolver) KernelFrame(pc uint64) Frame {
	if f, ok := r.kernel[pc]; ok {
		return f
	}
	f := Frame{Kind: Kernel, Module: "[kernel]", Offset: pc, Function: "[kernel]"}
	if r.ksyms != nil {
		if name, module, _, ok := r.ksyms.Lookup(pc); ok {
			f.Function = name
			if module != "" {
				f.Module = "[" + module + "]"
			}
		}
	}
	r.kernel[pc] = f
	return f
}

// Missing lists the modules without symbols, each with a hint to get
// them.
func (r *Resolver) Missing() []string {
	var out []string
	for _, m := range r.sym.MissingSymbols() {
		id := m.BuildID
		if id == "" {
			id = "none"
		}
		out = append(out, fmt.Sprintf("%s (build-id %s): %s", m.Module, id, m.Hint))
	}
	return out
}

// Events has the runtimes that can read what they need of a sample in
// the kernel, as it is taken (EventReader), load their programs, and
// returns what attaches them to a sampling event (sample.Options.Event),
// or nil when none can. Call it before Prompt, which it changes. A
// runtime that cannot is noted, and reads as it did without.
func (r *Resolver) Events() func(fd int) {
	for _, in := range r.instances {
		e, ok := in.(EventReader)
		if !ok || slices.Contains(r.events, e) {
			continue
		}
		if err := e.ReadAtEvents(); err != nil {
			r.notes = append(r.notes, err.Error())
			continue
		}
		r.events = append(r.events, e)
	}
	if len(r.events) == 0 {
		return nil
	}
	return func(fd int) {
		for _, e := range r.events {
			e.AttachEvent(fd) // an instance notes its failures
		}
	}
}

// ChainWalker is the runtime of the process whose frame chains the
// syscall tracer can read with its stacks (ChainWalker), or nil; one
// that says it must not be is noted.
func (r *Resolver) ChainWalker() ChainWalker {
	for _, in := range r.instances {
		if w, ok := in.(ChainWalker); ok {
			if _, err := w.WalkLayout(); err != nil {
				r.notes = append(r.notes, err.Error())
				continue
			}
			return w
		}
	}
	return nil
}

// LockHolders is the global lock of the process's interpreter counted
// over the samples named (LockSampler), or nil when it runs none.
func (r *Resolver) LockHolders() *LockHolders {
	for _, in := range r.instances {
		if l, ok := in.(LockSampler); ok {
			h := l.LockHolders()
			return &h
		}
	}
	return nil
}

// WatchLocks has the runtimes with a global lock (LockSampler) read it
// every interval until the returned function is called.
func (r *Resolver) WatchLocks(interval time.Duration) (stop func()) {
	var stops []func()
	for _, in := range r.instances {
		if l, ok := in.(LockSampler); ok {
			stops = append(stops, l.WatchLock(interval))
		}
	}
	return func() {
		for _, s := range stops {
			s()
		}
	}
}

// Chain hands the runtimes that read them (ChainWalker) the frame chain
// read in the kernel with the stack the next Frames names: nil for none.
func (r *Resolver) Chain(rec []byte) {
	for _, in := range r.instances {
		if w, ok := in.(ChainWalker); ok {
			w.KernelChain(rec)
		}
	}
}

// Prompt reports whether a runtime of the process reads its live state
// when a sample is resolved (LiveReader): samples must then reach the
// resolver as soon as they are taken.
func (r *Resolver) Prompt() bool {
	for _, in := range r.instances {
		if l, ok := in.(LiveReader); ok && l.ReadsLiveState() {
			return true
		}
	}
	return false
}

// Notes says what limits the stacks: objects walked by frame pointers
// for want of call frame information, runtimes that could not attach or
// read what they needed.
func (r *Resolver) Notes() []string {
	notes := append([]string(nil), r.notes...)
	var spaceErrs []error
	for _, img := range r.images {
		spaceErrs = append(spaceErrs, img.spaceErrs...)
	}
	if len(spaceErrs) > 0 {
		notes = append(notes, fmt.Sprintf("%d objects without usable call frame information were walked by frame pointers (first: %v)", len(spaceErrs), spaceErrs[0]))
	}
	if r.forgottenHits > 0 {
		notes = append(notes, fmt.Sprintf("%d samples ran programs the process left by exec before the last %d: they are not named (the mappings of %d programs are kept)",
			r.forgottenHits, maxImages-1, maxImages))
	}
	for _, in := range r.instances {
		notes = append(notes, in.Notes()...)
	}
	return notes
}

// Close detaches the runtimes and releases the objects.
func (r *Resolver) Close() {
	for _, in := range r.instances {
		in.Detach()
	}
	r.objects.Close()
	r.sym.Close()
}
