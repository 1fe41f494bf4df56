package stack

import (
	"fmt"
	"path"
	"path/filepath"
)

// Kind says what named a frame: the native symbolizer, the kernel's
// symbols, or a runtime (its Name).
type Kind string

const (
	Native Kind = "native"
	Kernel Kind = "kernel"
)

// Frame is one named frame. Function may be empty when nothing names the
// address; the frame then prints as Module+0xOffset (see Name).
type Frame struct {
	Kind     Kind   `json:"kind"`
	Function string `json:"function,omitempty"` // symbol, demangled; a runtime's function
	File     string `json:"file,omitempty"`     // source file, when known
	Line     int    `json:"line,omitempty"`
	Module   string `json:"module,omitempty"` // path or name of the object; "" for the kernel core and anonymous code
	Offset   uint64 `json:"offset"`           // file offset of the address in Module (the address itself where there is no module)
	BuildID  string `json:"build_id,omitempty"`
	Inlined  bool   `json:"inlined,omitempty"` // inlined into the next (outer) frame, at the same address
}

// IsKernel reports whether the frame is the kernel's.
func (f Frame) IsKernel() bool { return f.Kind == Kernel }

// Name is how the frame prints: its function, or module+0xoffset when
// nothing names it, so a reader can still resolve it later by hand.
func (f Frame) Name() string {
	if f.Function != "" {
		return f.Function
	}
	return fmt.Sprintf("%s+0x%x", f.ModuleName(), f.Offset)
}

// String is Name with the source position when known.
func (f Frame) String() string {
	if f.Function != "" && f.File != "" {
		return fmt.Sprintf("%s (%s:%d)", f.Function, path.Base(f.File), f.Line)
	}
	return f.Name()
}

// Label is how the frame prints in a stack: its Name, and for a
// runtime's frame with a source position (a Python function) the
// position too, as String gives it: for an interpreted language the
// file and line are what say which code ran, and its users know its
// frames so (py-spy's drain (ingest.py:9)). A native frame's line is
// left to the formats that carry lines (pprof) and to dump.
func (f Frame) Label() string {
	if f.Kind != "" && f.Kind != Native && f.Kind != Kernel && f.File != "" {
		return f.String()
	}
	return f.Name()
}

// ModuleName is the short name of the frame's module, as tools print it.
func (f Frame) ModuleName() string {
	switch {
	case f.Module != "":
		return filepath.Base(f.Module)
	case f.IsKernel():
		return "[kernel]"
	default:
		return "[unknown]"
	}
}
