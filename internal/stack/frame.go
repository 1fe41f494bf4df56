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

// AnonModule and UnknownModule are the modules the resolver gives native
// frames in anonymous memory and in memory outside every known mapping
// (a JIT's code mapped since the mappings were read): code a runtime may
// name.
const (
	AnonModule    = "[anon]"
	UnknownModule = "[unknown]"
)

// InUnmappedCode reports whether the frame is native code of no object:
// in AnonModule or UnknownModule.
func (f Frame) InUnmappedCode() bool {
	return f.Kind == Native && (f.Module == AnonModule || f.Module == UnknownModule)
}

// IsKernel reports whether the frame is the kernel's.
func (f Frame) IsKernel() bool { return f.Kind == Kernel }

// Name is how the frame prints: its function, or module+0xoffset when
// nothing names it, so a reader can still resolve it later by hand. A
// runtime's function that has a source position prints with it,
// "settleAccounts (ledger.js:7)": a script's functions are told apart by
// it (many are anonymous), where a native function's name is enough.
func (f Frame) Name() string {
	if f.Function != "" {
		if f.File != "" && f.Kind != "" && f.Kind != Native && f.Kind != Kernel {
			return f.withPosition()
		}
		return f.Function
	}
	return fmt.Sprintf("%s+0x%x", f.ModuleName(), f.Offset)
}

// String is Name with the source position when known.
func (f Frame) String() string {
	if f.Function != "" && f.File != "" {
		return f.withPosition()
	}
	return f.Name()
}

func (f Frame) withPosition() string {
	if f.Line <= 0 {
		return fmt.Sprintf("%s (%s)", f.Function, path.Base(f.File))
	}
	return fmt.Sprintf("%s (%s:%d)", f.Function, path.Base(f.File), f.Line)
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
