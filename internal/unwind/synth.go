package unwind

import "encoding/binary"

// Tables written by hand, for code that came with no call frame
// information of its own: a runtime's trampolines copied into anonymous
// memory, a JIT's compiled methods, whose frame layout the runtime knows.
// The opcodes such tables are written with are exported here, beside the
// parser that reads them back.
const (
	CFAAdvanceLoc   = cfaAdvanceLoc // delta in the low 6 bits
	CFAAdvanceLoc2  = cfaAdvanceLoc2
	CFAOffset       = cfaOffset // register in the low 6 bits
	CFADefCFA       = cfaDefCFA
	CFADefCFAOffset = cfaDefCFAOffset
)

// AMD64Table returns the table of size bytes of x86-64 code at offset 0
// whose rows are insns after the psABI's state at a call's entry (CFA =
// %rsp+8, the return address at CFA-8), with a code alignment of 1 and a
// data alignment of -8.
func AMD64Table(size uint64, insns []byte) (*Table, error) {
	return NewTable(Sections{DebugFrame: amd64DebugFrame(size, insns)})
}

// amd64DebugFrame is a .debug_frame of one CIE, the x86-64 psABI's, and
// one FDE covering [0, size) with insns.
func amd64DebugFrame(size uint64, insns []byte) []byte {
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
	fde := binary.LittleEndian.AppendUint64(nil, 0) // the CIE at offset 0
	fde = binary.LittleEndian.AppendUint64(fde, size)
	return entry(out, 0, append(fde, insns...))
}
