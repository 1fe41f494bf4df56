package python

import (
	"path"
	"strings"

	"github.com/cpuwhy/cpuwhy/internal/stack"
)

// evalFunction is the interpreter's eval loop: each of its native frames
// runs one or more Python frames.
const evalFunction = "_PyEval_EvalFrameDefault"

// isEval reports whether f is a native frame of the eval loop (or of a
// part of it the compiler split off: .cold, .constprop).
func isEval(f stack.Frame) bool {
	return f.Kind == stack.Native && (f.Function == evalFunction || strings.HasPrefix(f.Function, evalFunction+"."))
}

// glue are the prefixes of the interpreter's functions that only carry
// a call from one Python function, or from the C code a Python function
// called, to another: once the Python frames are in the stack they say
// nothing a reader needs. What a C function does (sock_recvfrom,
// list_sort, builtin_exec) is kept.
var glue = []string{
	"_PyEval_", "PyEval_", "_PyFunction_", "function_code_fastcall", "PyVectorcall_", "_PyVectorcall_",
	"_PyObject_Vectorcall", "PyObject_Vectorcall", "_PyObject_Call", "PyObject_Call", "_PyObject_MakeTpCall",
	"_PyObject_FastCall", "method_vectorcall", "cfunction_vectorcall", "cfunction_call", "call_function",
	"do_call_core", "_PyCFunction_FastCall", "_PyMethodDef_RawFastCall", "_PyMethodDescr_FastCall",
	"vectorcall_method", "object_vacall", "_PyMethodDef_RawFastCall", "method_vectorcall_",
}

func isGlue(f stack.Frame, module string) bool {
	if f.Kind != stack.Native || path.Base(f.Module) != module {
		return false
	}
	for _, p := range glue {
		if strings.HasPrefix(f.Function, p) {
			return true
		}
	}
	return false
}

// merge puts Python frames in place of the eval loop's native frames of
// one sample, both innermost first. py are the thread's Python frames,
// bounds where each call of the eval loop's share of them ends: the
// n-th eval frame from the innermost ran py[bounds[n-1]:bounds[n]]. An
// eval frame beyond the Python frames (the chain was read after the
// thread returned) stays native; Python frames beyond the eval frames
// (the native walk stopped short) go outermost. cut marks the Python
// stack as cut. The interpreter's inlined frames of an eval frame, and
// its call machinery (glue), go: the Python frames say it.
func merge(frames, py []stack.Frame, bounds []int, cut bool, module string) []stack.Frame {
	out := make([]stack.Frame, 0, len(frames)+len(py)+1)
	g, from := 0, 0
	for _, f := range frames {
		if !isEval(f) || g == len(bounds) {
			out = append(out, f)
			continue
		}
		for len(out) > 0 && out[len(out)-1].Inlined && out[len(out)-1].Module == f.Module && out[len(out)-1].Kind == stack.Native {
			out = out[:len(out)-1]
		}
		out = append(out, py[from:bounds[g]]...)
		from = bounds[g]
		g++
	}
	if from < len(py) {
		out = append(out, py[from:]...)
	}
	if cut {
		// After the outermost Python frame read: the rest were not.
		at := len(out)
		for i := len(out) - 1; i >= 0; i-- {
			if out[i].Kind == Kind {
				at = i + 1
				break
			}
		}
		out = append(out[:at], append([]stack.Frame{{Kind: Kind, Function: Truncated}}, out[at:]...)...)
	}
	module = path.Base(module) // frames name it so
	kept := out[:0]
	for _, f := range out {
		if !isGlue(f, module) {
			kept = append(kept, f)
		}
	}
	return kept
}
