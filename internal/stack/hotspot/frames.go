package hotspot

import (
	"encoding/binary"
	"fmt"

	"github.com/cpuwhy/cpuwhy/internal/unwind"
)

// Compiled methods keep no frame pointer (C1's and C2's code uses rbp as
// any other register), so the frame-pointer walk cannot leave one. Their
// frames have a fixed size, which the JVM keeps in each method's
// CodeBlob (_frame_size, in words, the return address and the saved rbp
// included): once the prologue has run (_frame_complete_offset from the
// code's start), the caller's stack pointer is rsp + size, the return
// address below it, the caller's rbp below that. The blob sits before
// the code, where a reader finds it by its own _code_begin and _code_end
// fields, which must equal the code's bounds in the JVM's perf map.

// Limits on the search for a blob and what is believed of it.
const (
	// maxBlobHeader bounds how far before its code a blob is looked for:
	// the nmethod header, its relocations and constants (a few hundred
	// bytes in JDK 17).
	maxBlobHeader = 4096
	// maxFrameWords bounds a frame size believed (C2 frames of large
	// methods reach a few hundred words).
	maxFrameWords = 1 << 14
	// maxUnwindTables bounds the methods whose unwinding is kept.
	maxUnwindTables = 1 << 14
)

// frameOf finds the frame size (in bytes) and the prologue's length of
// the compiled method whose code is [start, start+size).
func (ms *methods) frameOf(start, size uint64) (frame, prologue uint64, ok bool) {
	l := ms.l
	if l.blobCodeBegin < 0 || start < maxBlobHeader || start > 1<<56 || size > 1<<32 {
		return 0, 0, false // not user space's code: the page walk below would wrap
	}
	// The code heap may begin less than maxBlobHeader before the code:
	// read from the first readable page.
	base := start - maxBlobHeader
	var buf []byte
	for base < start {
		b := make([]byte, start-base)
		if n, err := ms.mem.ReadAt(b, base); err == nil && n == len(b) {
			buf = b
			break
		}
		base = base&^0xfff + 0x1000
	}
	if buf == nil {
		return 0, 0, false
	}
	field := func(b uint64, off int64) (uint64, bool) {
		i := b - base + uint64(off)
		if i+8 > uint64(len(buf)) {
			return 0, false
		}
		return binary.LittleEndian.Uint64(buf[i:]), true
	}
	// The blob nearest the code whose bounds are the code's.
	for b := start - 8; b >= base; b -= 8 {
		begin, ok1 := field(b, l.blobCodeBegin)
		end, ok2 := field(b, l.blobCodeEnd)
		if !ok1 || !ok2 || begin != start || end != start+size {
			continue
		}
		fs, ok3 := field(b, l.blobFrameSize)
		fc, ok4 := field(b, l.blobFrameComplete)
		words, complete := int64(int32(fs)), int64(int32(fc))
		if !ok3 || !ok4 || words < 2 || words > maxFrameWords || complete < 0 || uint64(complete) >= size {
			return 0, 0, false
		}
		return uint64(words) * 8, uint64(complete), true
	}
	return 0, 0, false
}

// frameTable is the call frame information of a compiled method's code
// of size bytes, addressed from its start: from the end of the prologue
// on, CFA = rsp + frame, the return address at CFA-8 and the caller's
// rbp at CFA-16. Before it, the rules are the psABI's at a function's
// entry (CFA = rsp+8), right for its first instruction only: the walk
// may lose the caller of a sample taken in a prologue.
func frameTable(size, frame, prologue uint64) (*unwind.Table, error) {
	if prologue > 0xffff || frame > 0xffffffff {
		return nil, fmt.Errorf("a prologue of %d bytes, a frame of %d", prologue, frame)
	}
	insns := []byte{unwind.CFAAdvanceLoc2, byte(prologue), byte(prologue >> 8), unwind.CFADefCFAOffset}
	insns = binary.AppendUvarint(insns, frame)   // unsigned LEB128
	insns = append(insns, unwind.CFAOffset|6, 2) // rbp at CFA-16 (data alignment -8)
	return unwind.AMD64Table(size, insns)
}

// UnwindTable gives the call frame information of a method the JVM
// compiled, named in its perf map, at pc: the unwinder's lookup for code
// without any.
func (in *instance) UnwindTable(pc uint64) (*unwind.Table, uint64, bool) {
	if in.stale {
		return nil, 0, false
	}
	sym, ok := in.m.Symbol(pc)
	if !ok {
		return nil, 0, false
	}
	t, seen := in.tables[sym.Start]
	if !seen {
		t = in.compiledTable(sym.Start, sym.Size, string(sym.Name))
		if len(in.tables) < maxUnwindTables {
			in.tables[sym.Start] = t
		}
	}
	if t == nil || pc < sym.Start+t.prologue {
		return nil, 0, false
	}
	return t.table, sym.Start, true
}

// compiledTable is the unwinding of one compiled method; nil for a stub
// or the interpreter (which keep frame pointers), or what cannot be read.
func (in *instance) compiledTable(start, size uint64, name string) *methodTable {
	if _, isMethod := MethodName(name); !isMethod {
		return nil
	}
	if in.methods == nil && in.methodsErr == nil {
		in.methods, in.methodsErr = openJVM(in.proc.FS, in.proc.PID, in.proc.Maps, in.proc.Mem)
	}
	if in.methods == nil {
		return nil
	}
	frame, prologue, ok := in.methods.frameOf(start, size)
	if !ok {
		return nil
	}
	t, err := frameTable(size, frame, prologue)
	if err != nil {
		return nil
	}
	return &methodTable{table: t, prologue: prologue}
}

// methodTable is a compiled method's unwinding.
type methodTable struct {
	table    *unwind.Table
	prologue uint64
}
