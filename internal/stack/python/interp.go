package python

import (
	"fmt"

	"github.com/cpuwhy/cpuwhy/internal/stack/python/ebpf"
)

// thread is one Python thread state.
type thread struct {
	addr    uint64 // the PyThreadState
	pthread uint64 // its thread_id: pthread_self() of the thread
	native  uint64 // its native_thread_id (3.11+): the kernel's, in the process's PID namespace
}

// threads reads the thread states of the interpreter whose
// _PyRuntimeState is at runtime: of the first interpreter only (the main
// one, in a process that runs no subinterpreters).
func (r *reader) threads(runtime uint64, dst []thread) ([]thread, error) {
	l := r.l
	interp, err := r.ptr(runtime + uint64(l.RuntimeInterpretersHead))
	if err != nil {
		return dst, fmt.Errorf("reading the interpreters of _PyRuntime at %#x: %w", runtime, err)
	}
	if interp == 0 {
		return dst, nil // not started, or finalized
	}
	ts, err := r.ptr(interp + uint64(l.InterpThreadsHead))
	if err != nil {
		return dst, fmt.Errorf("reading the threads of interpreter %#x: %w", interp, err)
	}
	size := max(l.ThreadNext, l.ThreadInterp, l.ThreadID, l.ThreadNativeID) + 8
	for i := 0; ts != 0; i++ {
		if i == maxThreads {
			return dst, fmt.Errorf("%w: more than %d thread states (a loop?)", errBad, maxThreads)
		}
		b, err := r.read(ts, size)
		if err != nil {
			return dst, fmt.Errorf("reading thread state %#x: %w", ts, err)
		}
		if u64(b, l.ThreadInterp) != interp {
			return dst, fmt.Errorf("%w: thread state %#x belongs to interpreter %#x, not %#x", errBad, ts, u64(b, l.ThreadInterp), interp)
		}
		t := thread{addr: ts, pthread: u64(b, l.ThreadID)}
		if l.ThreadNativeID >= 0 {
			t.native = u64(b, l.ThreadNativeID)
		}
		dst = append(dst, t)
		ts = u64(b, l.ThreadNext)
	}
	return dst, nil
}

// pyframe is one Python frame of a thread's chain.
type pyframe struct {
	code  uint64 // the code object
	at    int    // the instruction, for lineOf: bytes (3.8-3.10) or code units (3.11+)
	entry bool   // the outermost frame one call of the eval loop runs
}

// frames reads the Python frames of the thread state at ts, innermost
// first, at most maxFrames of them; cut says there were more. native is
// the native_thread_id the thread state must still have (3.11+; 0: not
// checked): a thread state freed and reused by another thread is not
// read as the one asked for.
func (r *reader) frames(ts, native uint64, dst []pyframe) (_ []pyframe, cut bool, err error) {
	raw, more, err := r.rawFrames(ts, native, r.raw[:0])
	r.raw = raw
	if err != nil {
		return dst, false, err
	}
	return r.chain(raw, more, dst)
}

// rawFrames reads the frame chain of the thread state at ts as it is,
// innermost first, as the kernel's walk (package ebpf) does: at most
// ebpf.MaxSteps frames, and no further than the first maxFrames+1 that
// are not shims, which chain cuts at anyway. more says the chain goes on.
func (r *reader) rawFrames(ts, native uint64, dst []ebpf.Frame) (_ []ebpf.Frame, more bool, err error) {
	l := r.l
	size := max(l.ThreadFrame, l.ThreadNativeID) + 8
	b, err := r.read(ts, size)
	if err != nil {
		return dst, false, fmt.Errorf("reading thread state %#x: %w", ts, err)
	}
	if native != 0 && u64(b, l.ThreadNativeID) != native {
		return dst, false, errMoved
	}
	f := u64(b, l.ThreadFrame)
	if l.CFrameCurrent >= 0 && f != 0 {
		if f, err = r.ptr(f + uint64(l.CFrameCurrent)); err != nil {
			return dst, false, fmt.Errorf("reading the current frame of thread state %#x: %w", ts, err)
		}
	}
	for py := 0; f != 0; {
		if len(dst) == ebpf.MaxSteps || py > maxFrames {
			return dst, true, nil
		}
		b, err := r.read(f, l.FrameSize)
		if err != nil {
			return dst, false, fmt.Errorf("reading frame %#x: %w", f, err)
		}
		fr := ebpf.Frame{Addr: f, Code: u64(b, l.FrameCode), Instr: u64(b, l.FrameInstr)}
		if l.FrameOwner >= 0 {
			fr.Owner = b[l.FrameOwner]
		}
		if l.FrameIsEntry >= 0 {
			fr.IsEntry = b[l.FrameIsEntry]
		}
		if !r.shim(fr) {
			py++
		}
		dst = append(dst, fr)
		f = u64(b, l.FrameBack)
	}
	return dst, false, nil
}

// shim says whether f is the shim frame an eval loop's call begins with
// (3.12+), owned by the C stack.
func (r *reader) shim(f ebpf.Frame) bool {
	return r.l.OwnedByCStack >= 0 && int(f.Owner) == r.l.OwnedByCStack
}

// chain interprets a thread's raw frame chain, innermost first, read by
// rawFrames or by the kernel at a sample: its Python frames, at most
// maxFrames of them (cut says there were more, as does more, the raw
// chain going on past what was read), each marked when it is the
// outermost one call of the eval loop runs. raw comes from the target's
// memory: a chain that loops, or an instruction outside its code, is
// refused.
func (r *reader) chain(raw []ebpf.Frame, more bool, dst []pyframe) (_ []pyframe, cut bool, err error) {
	l := r.l
	start := len(dst)
	for i, f := range raw {
		if len(dst)-start == maxFrames || i == ebpf.MaxSteps {
			more = true
			break
		}
		for _, s := range raw[:i] {
			if s.Addr == f.Addr {
				return dst, false, fmt.Errorf("%w: frame %#x of the chain loops", errBad, f.Addr)
			}
		}
		if l.Minor <= 10 {
			lasti := int(int32(uint32(f.Instr)))
			if l.Minor == 10 {
				lasti *= 2 // f_lasti counts code units since 3.10
			}
			dst = append(dst, pyframe{code: f.Code, at: lasti, entry: true})
			continue
		}
		if r.shim(f) {
			// The frame before it was that call's outermost.
			if len(dst) > start {
				dst[len(dst)-1].entry = true
			}
			continue
		}
		at := (int64(f.Instr) - int64(f.Code+uint64(l.CodeAdaptive))) / 2
		if at < -1 || at > 1<<30 {
			return dst, false, fmt.Errorf("%w: frame %#x runs instruction %#x, outside its code %#x", errBad, f.Addr, f.Instr, f.Code)
		}
		entry := l.FrameIsEntry >= 0 && f.IsEntry != 0
		dst = append(dst, pyframe{code: f.Code, at: int(at), entry: entry})
	}
	if len(dst) > start {
		dst[len(dst)-1].entry = true // what the eval frames left run
	}
	return dst, more, nil
}

// errMoved says a thread state is no longer the thread's.
var errMoved = fmt.Errorf("thread state moved")
