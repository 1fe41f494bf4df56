package perfmap

import (
	"bytes"
	"fmt"

	"github.com/cpuwhy/cpuwhy/internal/unwind"
)

// CPython's -X perf calls every Python function through a trampoline of
// its own, a copy of Python/asm_trampoline.S in anonymous memory that the
// map names "py::FUNCTION:FILE". On x86-64 (3.12 and 3.13) it is
//
//	[endbr64]            with CET
//	sub  $8, %rsp
//	call *%rcx           the interpreter, for this function's frame
//	add  $8, %rsp
//	ret
//
// It keeps no frame pointer and has no call frame information where it
// runs, so the unwinder's frame-pointer fallback would take the
// interpreter's %rbp for its own and lose every caller: a stack would end
// at the innermost Python function. The code is recognised by its bytes,
// read from the process at the symbol's start, never by the name alone,
// and unwound with rules made for it: CFA = %rsp+8 at entry and after the
// add, %rsp+16 between, the return address at CFA-8, every other register
// unchanged.
var trampolines = []trampoline{
	newTrampoline(nil),
	newTrampoline([]byte{0xf3, 0x0f, 0x1e, 0xfa}), // endbr64
}

// trampoline is one shape of the code and its call frame information,
// addressed from the code's start (the bias is the symbol's address).
type trampoline struct {
	code  []byte
	table *unwind.Table
}

func newTrampoline(prefix []byte) trampoline {
	sub := []byte{0x48, 0x83, 0xec, 0x08} // sub $8,%rsp
	call := []byte{0xff, 0xd1}            // call *%rcx
	add := []byte{0x48, 0x83, 0xc4, 0x08} // add $8,%rsp
	ret := []byte{0xc3}
	code := bytes.Join([][]byte{prefix, sub, call, add, ret}, nil)
	afterSub := len(prefix) + len(sub)
	afterCall := afterSub + len(call) + len(add)
	table, err := unwind.AMD64Table(uint64(len(code)), []byte{
		unwind.CFAAdvanceLoc | byte(afterSub), unwind.CFADefCFAOffset, 16,
		unwind.CFAAdvanceLoc | byte(afterCall-afterSub), unwind.CFADefCFAOffset, 8,
	})
	if err != nil {
		panic(fmt.Sprintf("perfmap: the trampoline's call frame information: %v", err))
	}
	return trampoline{code: code, table: table}
}

// maxTrampolines bounds the symbols of a trampoline's size whose code
// is remembered, each a read of the process's memory and a map entry; the
// interpreter makes one trampoline per function that ran, and a profile
// meets few of them.
const maxTrampolines = 1 << 16

// UnwindTable gives the call frame information of a CPython trampoline
// the map names at pc: the unwinder's lookup for code without any.
func (in *Map) UnwindTable(pc uint64) (*unwind.Table, uint64, bool) {
	sym, ok := in.table.Symbol(pc)
	if !ok || in.mem == nil || !trampolineSize(sym.Size) {
		return nil, 0, false // JIT code, which keeps frame pointers
	}
	t, seen := in.trampolines[sym.Start]
	if !seen {
		t = in.recognise(sym)
		if len(in.trampolines) < maxTrampolines {
			in.trampolines[sym.Start] = t
		}
	}
	if t == nil {
		return nil, 0, false
	}
	return t, sym.Start, true
}

// trampolineSize reports whether a symbol has the size of a trampoline.
func trampolineSize(size uint64) bool {
	for _, tr := range trampolines {
		if size == uint64(len(tr.code)) {
			return true
		}
	}
	return false
}

// recognise reads the code of sym and returns the call frame information
// of the trampoline shape it has, or nil.
func (in *Map) recognise(sym Symbol) *unwind.Table {
	var buf [16]byte
	for _, tr := range trampolines {
		if sym.Size != uint64(len(tr.code)) {
			continue
		}
		code := buf[:len(tr.code)]
		if n, err := in.mem.ReadAt(code, sym.Start); err != nil || n != len(code) {
			return nil
		}
		if bytes.Equal(code, tr.code) {
			return tr.table
		}
	}
	return nil
}
