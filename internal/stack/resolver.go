package stack

import (
	"fmt"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/objfile"
	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/sample"
	"github.com/cpuwhy/cpuwhy/internal/symbol"
	"github.com/cpuwhy/cpuwhy/internal/unwind"
)

// MaxFrames bounds an unwound user stack.
const MaxFrames = 128

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
}

// Resolver unwinds and names the stacks of one process. It is not safe
// for concurrent use.
type Resolver struct {
	pid     int
	opts    Options
	mem     unwind.Memory
	objects *objfile.Opener
	space   *unwind.Space
	sym     *symbol.Symbolizer
	ksyms   *sample.KernelSymbols
	u       unwind.Unwinder
	trace   unwind.Trace
	pcs     []uint64
	frames  []Frame

	user, kernel map[uint64]Frame // names, by address
	instances    []Instance
	unwinders    []CodeUnwinder // the instances that unwind code of their own
	notes        []string
	refreshed    time.Time
	spaceErrs    []error
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
		sym:     symbol.NewSymbolizer(symbol.Options{FS: opts.FS, DebugDirs: opts.DebugDirs}),
		user:    map[uint64]Frame{},
		kernel:  map[uint64]Frame{},
	}
	if r.mem == nil {
		r.mem = unwind.ProcessMemory{Pid: pid}
	}
	if opts.Kernel {
		r.ksyms, _ = sample.ReadKernelSymbols(opts.FS)
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
		in, err := rt.Attach(Process{PID: pid, NsPID: nspid, FS: opts.FS, Maps: maps, Mem: r.mem})
		if err != nil {
			r.notes = append(r.notes, fmt.Sprintf("%s frames not named: %v", rt.Name(), err))
			continue
		}
		if in != nil {
			r.instances = append(r.instances, in)
			if u, ok := in.(CodeUnwinder); ok {
				r.unwinders = append(r.unwinders, u)
			}
		}
	}
	return r, nil
}

// build makes the unwinding tables of maps.
func (r *Resolver) build(maps []proc.Mapping) {
	r.space, r.spaceErrs = unwind.NewSpace(maps, r.objects.OpenELF, r.mem)
	r.objects.Close() // the tables are read
	r.refreshed = time.Now()
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
	r.build(maps)
	// What was named at an address may be another object's now (exec).
	r.sym.Forget(r.pid)
	clear(r.user)
	for _, in := range r.instances {
		in.Sync(maps)
	}
	return true
}

// Unwind walks the user stack from regs through the copy of the stack,
// and returns the addresses of its frames, innermost first (valid until
// the next call), and why the walk ended.
func (r *Resolver) Unwind(regs unwind.Regs, stack unwind.StackCopy) ([]uint64, unwind.Stop) {
	if _, _, mapped := r.space.Lookup(regs.PC); !mapped {
		r.refresh()
	}
	mem := unwind.Memory(stack)
	r.u.TraceInto(&r.trace, regs, mem, r.lookup, MaxFrames)
	r.pcs = r.pcs[:0]
	for _, f := range r.trace.Frames {
		r.pcs = append(r.pcs, f.PC)
	}
	return r.pcs, r.trace.Stop
}

// lookup finds the call frame information for pc: the object's, or for
// code without any (anonymous memory, an object without CFI, memory
// mapped since the mappings were read) a runtime's.
func (r *Resolver) lookup(pc uint64) (*unwind.Table, uint64, bool) {
	table, bias, mapped := r.space.Lookup(pc)
	if table != nil {
		return table, bias, mapped
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
	for _, in := range r.instances {
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

// Native names a user address. A caller's frame holds a return address,
// one past its call instruction, which may already belong to the next
// function or line: the call is named instead.
func (r *Resolver) Native(pc uint64, caller bool) Frame {
	at := pc
	if caller && at > 0 {
		at--
	}
	if f, ok := r.user[at]; ok {
		return f
	}
	sf, _ := r.sym.Symbolize(r.pid, at)
	f := Frame{Kind: Native, Function: sf.Function, File: sf.File, Line: sf.Line, Module: sf.Module, Offset: sf.Offset, BuildID: sf.BuildID}
	switch {
	case !sf.Mapped:
		f.Module, f.Offset = "[unknown]", at
	case sf.Module == "" && f.Function == "":
		// Anonymous code, a JIT's: a runtime may name it; else the
		// address is all there is to print.
		f.Module, f.Offset = "[anon]", at
	}
	r.user[at] = f
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

// Notes says what limits the stacks: objects walked by frame pointers
// for want of call frame information, runtimes that could not attach or
// read what they needed.
func (r *Resolver) Notes() []string {
	notes := append([]string(nil), r.notes...)
	if len(r.spaceErrs) > 0 {
		notes = append(notes, fmt.Sprintf("%d objects without usable call frame information were walked by frame pointers (first: %v)", len(r.spaceErrs), r.spaceErrs[0]))
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
