package perfmap

import (
	"bytes"
	"encoding/binary"
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
	table, err := unwind.NewTable(unwind.Sections{DebugFrame: debugFrame(uint64(len(code)), []byte{
		cfaAdvanceLoc | byte(afterSub), cfaDefCFAOffset, 16,
		cfaAdvanceLoc | byte(afterCall-afterSub), cfaDefCFAOffset, 8,
	})})
	if err != nil {
		panic(fmt.Sprintf("perfmap: the trampoline's call frame information: %v", err))
	}
	return trampoline{code: code, table: table}
}

// DWARF call frame instructions (DWARF 5, 6.4.2).
const (
	cfaAdvanceLoc   = 0x40 // delta in the low 6 bits
	cfaOffset       = 0x80 // register in the low 6 bits
	cfaDefCFA       = 0x0c
	cfaDefCFAOffset = 0x0e
)

// debugFrame is a .debug_frame of one CIE, the x86-64 psABI's (CFA =
// %rsp+8, return address at CFA-8), and one FDE covering [0, size) with
// insns.
func debugFrame(size uint64, insns []byte) []byte {
	entry := func(out []byte, id uint32, body []byte) []byte {
		out = binary.LittleEndian.AppendUint32(out, uint32(4+len(body)))
		out = binary.LittleEndian.AppendUint32(out, id)
		return append(out, body...)
	}
	cie := []byte{
		1, 0, // version, no augmentation
		1,               // code alignment
		0x78,            // data alignment -8 (SLEB128)
		16,              // return address column
		cfaDefCFA, 7, 8, // CFA = %rsp+8
		cfaOffset | 16, 1, // return address at CFA-8
	}
	out := entry(nil, 0xffffffff, cie)
	fde := binary.LittleEndian.AppendUint64(nil, 0)
	fde = binary.LittleEndian.AppendUint64(fde, size)
	return entry(out, 0, append(fde, insns...)) // the CIE at offset 0
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
