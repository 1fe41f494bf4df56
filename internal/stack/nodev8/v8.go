package nodev8

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/cpuwhy/cpuwhy/internal/objfile"
	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/stack"
	"github.com/cpuwhy/cpuwhy/internal/unwind"
)

// Kind is the Kind of the frames this runtime names.
const Kind stack.Kind = "v8"

// maxLeaves bounds the names kept of JIT code's addresses, for samples
// named from their address alone (stack.Instance.Expand).
const maxLeaves = 1 << 14

func init() { stack.Register(Runtime{}) }

// Runtime is the V8 runtime.
type Runtime struct{}

// Name is Kind.
func (Runtime) Name() stack.Kind { return Kind }

// v8Binary matches the objects V8 is linked into: node (nodejs, node20)
// and libnode.so.
var v8Binary = regexp.MustCompile(`^(node(js)?[0-9]*|libnode\.so(\.[0-9]+)*)$`)

// Attach reads the layout of V8's objects from the node binary p maps.
// A binary without the metadata, or of a V8 release not known, gives an
// instance that names nothing and says why once (its note), so that its
// JavaScript frames are never given a name that could be wrong.
func (Runtime) Attach(p stack.Process) (stack.Instance, error) {
	var in *instance
	seen := map[string]bool{}
	// Debian's node is a small program linked to libnode.so, which holds
	// V8 and its metadata; NodeSource's holds all itself: each candidate
	// is tried until one has the metadata.
	for _, m := range p.Maps {
		if !m.Exec() || !v8Binary.MatchString(filepath.Base(m.Path)) || seen[m.Path] {
			continue
		}
		seen[m.Path] = true
		if in == nil {
			in = &instance{leaves: map[uint64]stack.Frame{}}
		}
		l, err := layoutOf(p, m)
		if err != nil {
			if in.err == nil || !errors.Is(err, ErrNoMetadata) {
				in.err = err
			}
			continue
		}
		in.layout, in.err = &l, nil
		in.heap = newHeap(in.layout, p.Mem)
		break
	}
	if in == nil {
		return nil, nil
	}
	return in, nil
}

// layoutOf reads the layout of the V8 binary mapped by m.
func layoutOf(p stack.Process, m proc.Mapping) (Layout, error) {
	f, err := objfile.Open(p.FS, p.PID, m)
	if err != nil {
		return Layout{}, fmt.Errorf("opening %s: %w", m.Path, err)
	}
	defer f.Close()
	l, err := ReadLayout(f.ELF)
	switch {
	case errors.Is(err, ErrUnknownVersion):
		return l, fmt.Errorf("%s runs %w", m.Path, err)
	case err != nil:
		return l, fmt.Errorf("%s: %w", m.Path, err)
	}
	return l, nil
}

// instance names the JavaScript frames of one node process.
type instance struct {
	layout *Layout // nil: nothing is named (err says why)
	err    error
	heap   *heap
	// leaves are the names given to addresses of JIT code, each of one
	// function, for the samples named from their address alone.
	leaves map[uint64]stack.Frame
	// jsSamples counts samples with a JavaScript frame seen: named, or
	// (layout nil) left unnamed.
	named, unnamed int
}

// jsCode reports whether frame f may run in a JavaScript function's own
// frame: code nothing named (the JIT's anonymous code, or V8's builtins
// in a stripped libnode.so), the interpreter's entry and its bytecode
// handlers, or the baseline compiler's builtins, which run in the frame
// of the function they work for. The frame's slots are checked anyway.
func jsCode(f *stack.Frame) bool {
	if f.Function == "" {
		return true
	}
	fn := f.Function
	return strings.HasPrefix(fn, "Builtins_Interpreter") || strings.HasPrefix(fn, "Builtins_BaselineOrInterpreter") ||
		strings.HasPrefix(fn, "Builtins_") && (strings.HasSuffix(fn, "Handler") || strings.HasSuffix(fn, "_Baseline"))
}

// frameMemory reads a frame's slots from the stack copied with the
// sample, or from the process for frames past it (callers' frames, which
// do not change while their callees run).
type frameMemory struct {
	stack, live unwind.Memory
}

func (m frameMemory) ReadAt(p []byte, addr uint64) (int, error) {
	if m.stack != nil {
		if n, err := m.stack.ReadAt(p, addr); err == nil {
			return n, nil
		}
	}
	return m.live.ReadAt(p, addr)
}

// ExpandStack names the frames that run JavaScript: the frame pointer of
// such a frame holds, at fixed places V8 gives (off_fp_*), a context
// (not a frame-type marker, a small integer) and the JSFunction, whose
// SharedFunctionInfo has the name and the script.
func (in *instance) ExpandStack(tid int, pcs, fps []uint64, stk unwind.Memory, frames []stack.Frame) []stack.Frame {
	var seen, named bool
	for i := range frames {
		f := &frames[i]
		if f.Kind != stack.Native || i >= len(fps) || fps[i] == 0 || !jsCode(f) {
			continue
		}
		seen = true
		if in.layout == nil {
			continue
		}
		marker, fn, ok := in.slots(frameMemory{stack: stk, live: in.heap.mem}, fps[i])
		if !ok || in.heap.isSmi(marker) {
			continue // a typed frame (stub, entry, exit): no function
		}
		fun, ok := in.heap.function(fn)
		if !ok {
			continue
		}
		anon := f.Function == ""
		f.Kind, f.Function, f.File, f.Line = Kind, fun.Name, fun.File, fun.Line
		if f.Function == "" {
			f.Function = "(anonymous)"
		}
		named = true
		if i == 0 && anon && len(pcs) > 0 && len(in.leaves) < maxLeaves {
			in.leaves[pcs[0]] = *f
		}
	}
	switch {
	case named:
		in.named++
	case seen:
		in.unnamed++
	}
	return frames
}

// slots reads a frame's context-or-marker and function slots, in one
// read of the span that holds both.
func (in *instance) slots(m unwind.Memory, fp uint64) (marker, fn uint64, ok bool) {
	l := in.layout
	lo := min(l.FPFunction, l.FPContextType)
	var b [2*maxFrameOffset + 8]byte
	span := b[:max(l.FPFunction, l.FPContextType)-lo+8]
	if n, err := m.ReadAt(span, fp+uint64(lo)); err != nil || n != len(span) {
		return 0, 0, false
	}
	return binary.LittleEndian.Uint64(span[l.FPContextType-lo:]), binary.LittleEndian.Uint64(span[l.FPFunction-lo:]), true
}

// Expand names, from their address alone, the frames in JIT code that a
// walk of a whole stack named before: code the JIT made belongs to one
// function (the interpreter's does not, and is not named so).
func (in *instance) Expand(tid int, pcs []uint64, frames []stack.Frame) []stack.Frame {
	for i := range frames {
		f := &frames[i]
		if f.Kind != stack.Native || f.Function != "" || i >= len(pcs) {
			continue
		}
		if named, ok := in.leaves[pcs[i]]; ok && i == 0 {
			*f = named
		}
	}
	return frames
}

// Sync does nothing: V8's objects are read where the frames point.
func (in *instance) Sync([]proc.Mapping) {}

// Notes says why JavaScript frames were not named.
func (in *instance) Notes() []string {
	if in.unnamed == 0 || in.layout != nil && in.named > 0 {
		return nil
	}
	if in.layout == nil {
		return []string{fmt.Sprintf("%d samples ran JavaScript that is not named: %v; its frames print as the interpreter's or [anon]+0xADDRESS (node --perf-basic-prof would name them from a perf map)", in.unnamed, in.err)}
	}
	return []string{fmt.Sprintf("%d samples ran JavaScript whose function could not be read from V8's objects", in.unnamed)}
}

// Detach does nothing.
func (in *instance) Detach() {}
