package unwind

import (
	"errors"
	"sort"
	"unsafe"
)

// Caps on work sized by the input, which comes from a target's files or
// memory and may be hostile.
const (
	// maxFDEs caps the FDEs a Table indexes: libc has about 3,700, the
	// biggest binaries (browsers) a few hundred thousand.
	maxFDEs = 1 << 21
	// maxSteps caps the instructions one row evaluation runs (CIE initial
	// instructions plus the FDE's); compilers emit a few dozen per FDE.
	maxSteps = 1 << 14
	// maxStateStack caps DW_CFA_remember_state nesting.
	maxStateStack = 64
)

// NumRegs is how many DWARF registers a Row tracks: 0-16 on x86-64
// (16 is the return address), 0-32 on arm64 (31 is sp, 32 pc). Rules for
// higher registers are parsed and dropped.
const NumRegs = 33

// DWARF register numbers of x86-64 (System V psABI, figure 3.36).
const (
	RegAMD64RBP = 6
	RegAMD64RSP = 7
	RegAMD64RA  = 16
)

// RuleKind says how a register of the caller is recovered.
type RuleKind uint8

// Register rules (DWARF 5, 6.4.1). The zero value, RuleSame, is what an
// unmentioned callee-saved register means on the psABIs cpuwhy supports.
const (
	RuleSame        RuleKind = iota // unchanged from the callee
	RuleUndefined                   // not recoverable; for the return address: outermost frame
	RuleOffset                      // saved at CFA+Offset
	RuleValOffset                   // the value is CFA+Offset
	RuleRegister                    // in register Reg of the callee
	RuleUnsupported                 // a DWARF expression
)

// Rule is how to recover one register.
type Rule struct {
	Kind   RuleKind
	Reg    uint16
	Offset int64
}

// CFAKind says how the canonical frame address is computed.
type CFAKind uint8

// CFA rules.
const (
	CFAUndefined   CFAKind = iota // no rule yet
	CFARegOffset                  // register Reg + Offset
	CFAPLT                        // Reg + Offset + ((pc & 15) >= Threshold ? 8 : 0): the .plt expression
	CFAUnsupported                // another DWARF expression
)

// CFARule is how to compute the CFA.
type CFARule struct {
	Kind      CFAKind
	Reg       uint16
	Offset    int64
	Threshold uint8 // CFAPLT only
}

// Row is the unwind rule row for one address: the answer of CFA program
// evaluation.
type Row struct {
	CFA   CFARule
	Regs  [NumRegs]Rule
	RAReg uint64 // the CIE's return address column
	// Signal is set for signal trampolines (augmentation "S"): the
	// caller's PC is where it was interrupted, not a return address.
	Signal bool
}

// RA is the rule for the return address column.
func (r *Row) RA() Rule {
	if r.RAReg >= NumRegs {
		return Rule{Kind: RuleUnsupported}
	}
	return r.Regs[r.RAReg]
}

// Sections are the call frame sections of one ELF object, as bytes and
// the virtual addresses they are linked at. Any may be empty.
type Sections struct {
	EHFrame        []byte
	EHFrameAddr    uint64
	EHFrameHdr     []byte
	EHFrameHdrAddr uint64
	DebugFrame     []byte
}

// Table finds the CFI row for an address of one ELF object. It indexes
// FDEs by start address when built and parses the covering FDE on each
// lookup, so it holds little memory; it is immutable and safe for
// concurrent use.
type Table struct {
	eh, debug           frameSection
	ehIndex, debugIndex []fdeRef
}

type fdeRef struct {
	start uint64 // first address covered, in the object's addresses
	off   uint32 // of the FDE in its section
}

type frameSection struct {
	name string
	data []byte
	addr uint64
	eh   bool // .eh_frame conventions (CIE id 0, relative CIE pointer, z augmentation)
}

// NewTable indexes the FDEs of sections. It uses the binary search table
// of .eh_frame_hdr when it has one in the usual encoding, and otherwise
// walks .eh_frame. Errors are FormatErrors or ErrTooComplex; a malformed
// .eh_frame_hdr is not one (the walk replaces it).
func NewTable(s Sections) (*Table, error) {
	t := &Table{
		eh:    frameSection{name: ".eh_frame", data: s.EHFrame, addr: s.EHFrameAddr, eh: true},
		debug: frameSection{name: ".debug_frame", data: s.DebugFrame},
	}
	var err error
	if len(s.EHFrame) > 0 {
		t.ehIndex = t.indexHdr(s.EHFrameHdr, s.EHFrameHdrAddr)
		if t.ehIndex == nil {
			if t.ehIndex, err = t.eh.index(); err != nil {
				return nil, err
			}
		}
	}
	if len(s.DebugFrame) > 0 {
		if t.debugIndex, err = t.debug.index(); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// indexHdr reads the sorted table of .eh_frame_hdr (LSB 4.1 "Exception
// Frames"), or returns nil if there is none it can use.
func (t *Table) indexHdr(hdr []byte, hdrAddr uint64) []fdeRef {
	r := &reader{sec: ".eh_frame_hdr", b: hdr, addr: hdrAddr}
	version, ptrEnc, countEnc, tableEnc := r.u8(), r.u8(), r.u8(), r.u8()
	if r.err != nil || version != 1 || tableEnc != peDataRel|peSdata4 {
		return nil
	}
	if _, err := r.pointer(ptrEnc, hdrAddr); err != nil {
		return nil
	}
	count, err := r.pointer(countEnc, hdrAddr)
	if err != nil || count == 0 || count > uint64(len(hdr)/8) || count > maxFDEs {
		return nil
	}
	refs := make([]fdeRef, 0, count)
	for i := uint64(0); i < count; i++ {
		start := hdrAddr + uint64(int64(int32(r.u32())))
		fde := hdrAddr + uint64(int64(int32(r.u32())))
		off := fde - t.eh.addr
		if r.err != nil || fde < t.eh.addr || off >= uint64(len(t.eh.data)) {
			return nil
		}
		refs = append(refs, fdeRef{start: start, off: uint32(off)})
	}
	if !sort.SliceIsSorted(refs, func(i, j int) bool { return refs[i].start < refs[j].start }) {
		return nil
	}
	return refs
}

// index walks every entry of the section and returns its FDEs sorted by
// start address.
func (s *frameSection) index() ([]fdeRef, error) {
	if len(s.data) > 1<<32-1 {
		return nil, &FormatError{Section: s.name, Msg: "section larger than 4 GiB"}
	}
	var refs []fdeRef
	cies := map[int]*cie{}
	for off := 0; off < len(s.data); {
		e, err := s.entry(off)
		if err != nil {
			return nil, err
		}
		if e.end == 0 { // .eh_frame terminator
			break
		}
		if !e.isCIE {
			c := cies[e.ciePtr]
			if c == nil {
				if c, err = s.parseCIE(e.ciePtr); err != nil {
					return nil, err
				}
				cies[e.ciePtr] = c
			}
			f, err := s.parseFDE(e, c)
			if err != nil && !errors.Is(err, ErrUnsupported) {
				return nil, err
			}
			// An FDE with pc_range 0 is what the linker leaves of a
			// discarded function: nothing to index.
			if err == nil && f.end > f.start {
				if len(refs) >= maxFDEs {
					return nil, &FormatError{Section: s.name, Off: off, Msg: "too many FDEs"}
				}
				refs = append(refs, fdeRef{start: f.start, off: uint32(off)})
			}
		}
		off = e.end
	}
	sort.Slice(refs, func(i, j int) bool { return refs[i].start < refs[j].start })
	return refs, nil
}

// entry is the framing of one CIE or FDE.
type entry struct {
	off    int // of the length field
	body   int // first byte after the CIE id / CIE pointer
	end    int // first byte after the entry; 0 for a terminator
	isCIE  bool
	ciePtr int // FDE: offset of its CIE
}

func (s *frameSection) entry(off int) (entry, error) {
	r := &reader{sec: s.name, b: s.data, off: off, addr: s.addr}
	length := uint64(r.u32())
	is64 := false
	if length == 0xffffffff {
		length = r.u64()
		is64 = true
	}
	if r.err != nil {
		return entry{}, r.err
	}
	if length == 0 {
		if s.eh {
			return entry{off: off}, nil
		}
		return entry{}, &FormatError{Section: s.name, Off: off, Msg: "empty entry"}
	}
	if length > uint64(len(s.data)-r.off) {
		return entry{}, &FormatError{Section: s.name, Off: off, Msg: "entry runs past the section"}
	}
	e := entry{off: off, end: r.off + int(length)}
	idOff := r.off
	var id uint64
	if is64 {
		id = r.u64()
	} else {
		id = uint64(r.u32())
	}
	if r.err != nil || r.off > e.end {
		return entry{}, &FormatError{Section: s.name, Off: off, Msg: "entry too short for its CIE pointer"}
	}
	e.body = r.off
	switch {
	case s.eh && id == 0, !s.eh && !is64 && id == 0xffffffff, !s.eh && is64 && id == ^uint64(0):
		e.isCIE = true
	case s.eh:
		// The CIE pointer counts back from the field itself.
		if id > uint64(idOff) {
			return entry{}, &FormatError{Section: s.name, Off: idOff, Msg: "CIE pointer before the section"}
		}
		e.ciePtr = idOff - int(id)
	default:
		if id >= uint64(len(s.data)) {
			return entry{}, &FormatError{Section: s.name, Off: idOff, Msg: "CIE pointer past the section"}
		}
		e.ciePtr = int(id)
	}
	return e, nil
}

// cie is a parsed Common Information Entry.
type cie struct {
	codeAlign uint64
	dataAlign int64
	raReg     uint64
	fdeEnc    uint8
	hasAug    bool // "z": FDEs carry an augmentation length
	signal    bool // "S"
	insns     []byte
	insnsOff  int
}

func (s *frameSection) parseCIE(off int) (*cie, error) {
	c := new(cie)
	return c, s.parseCIEInto(off, c)
}

// parseCIEInto parses the CIE at off into c; lookups keep c on the stack.
func (s *frameSection) parseCIEInto(off int, c *cie) error {
	e, err := s.entry(off)
	if err != nil {
		return err
	}
	if !e.isCIE {
		return &FormatError{Section: s.name, Off: off, Msg: "FDE's CIE pointer names an FDE"}
	}
	r := &reader{sec: s.name, b: s.data[:e.end], off: e.body, addr: s.addr}
	*c = cie{fdeEnc: peAbsptr}
	version := r.u8()
	if r.err == nil && version != 1 && version != 3 && version != 4 {
		return &FormatError{Section: s.name, Off: e.body, Msg: "unknown CIE version"}
	}
	aug := r.cstring()
	if version == 4 {
		addrSize, segSize := r.u8(), r.u8()
		if r.err == nil && (addrSize != 8 || segSize != 0) {
			return &FormatError{Section: s.name, Off: e.body, Msg: "address size not 8 or segments"}
		}
	}
	if len(aug) >= 2 && aug[:2] == "eh" { // pre-2000 GCC: an extra pointer
		return ErrUnsupported
	}
	c.codeAlign = r.uleb()
	c.dataAlign = r.sleb()
	if version == 1 {
		c.raReg = uint64(r.u8())
	} else {
		c.raReg = r.uleb()
	}
	if len(aug) > 0 && aug[0] == 'z' {
		c.hasAug = true
		augLen := r.uleb()
		augData := r.bytes(augLen)
		if r.err != nil {
			return r.err
		}
		ar := &reader{sec: s.name, b: s.data[:r.off], off: r.off - len(augData), addr: s.addr}
	augLoop:
		for _, ch := range aug[1:] {
			switch ch {
			case 'R':
				c.fdeEnc = ar.u8()
			case 'L':
				ar.u8() // LSDA encoding: the LSDA is for exceptions, not us
			case 'P':
				if _, err := ar.pointer(ar.u8(), 0); err != nil && !errors.Is(err, ErrUnsupported) {
					return err
				}
			case 'S':
				c.signal = true
			case 'B', 'G': // arm64 BTI / MTE: no data
			default:
				// The length lets us skip data we cannot read.
				break augLoop
			}
			if ar.err != nil {
				return ar.err
			}
		}
	} else if aug != "" {
		return ErrUnsupported
	}
	if r.err != nil {
		return r.err
	}
	c.insnsOff = r.off
	c.insns = s.data[r.off:e.end]
	return nil
}

// fde is a parsed Frame Description Entry.
type fde struct {
	cie        *cie
	start, end uint64
	insns      []byte
	insnsOff   int
}

func (s *frameSection) parseFDE(e entry, c *cie) (*fde, error) {
	f := new(fde)
	return f, s.parseFDEInto(e, c, f)
}

func (s *frameSection) parseFDEInto(e entry, c *cie, f *fde) error {
	r := &reader{sec: s.name, b: s.data[:e.end], off: e.body, addr: s.addr}
	*f = fde{cie: c}
	var err error
	if s.eh {
		if f.start, err = r.pointer(c.fdeEnc, 0); err != nil {
			return err
		}
		length := pointerValue(r, c.fdeEnc)
		f.end = f.start + length
		if f.end < f.start {
			return &FormatError{Section: s.name, Off: e.off, Msg: "address range wraps"}
		}
	} else {
		f.start = r.u64()
		f.end = f.start + r.u64()
	}
	if c.hasAug {
		r.bytes(r.uleb())
	}
	if r.err != nil {
		return r.err
	}
	f.insnsOff = r.off
	f.insns = s.data[r.off:e.end]
	return nil
}

// find parses the FDE covering addr among refs into f and c.
func (s *frameSection) find(refs []fdeRef, addr uint64, f *fde, c *cie) error {
	i := sort.Search(len(refs), func(i int) bool { return refs[i].start > addr }) - 1
	if i < 0 {
		return ErrNoFDE
	}
	e, err := s.entry(int(refs[i].off))
	if err != nil {
		return err
	}
	if e.isCIE || e.end == 0 {
		return &FormatError{Section: s.name, Off: e.off, Msg: "indexed entry is not an FDE"}
	}
	if err := s.parseCIEInto(e.ciePtr, c); err != nil {
		return err
	}
	if err := s.parseFDEInto(e, c, f); err != nil {
		return err
	}
	if addr < f.start || addr >= f.end {
		return ErrNoFDE
	}
	return nil
}

// RowAt evaluates the CFA program of the FDE covering addr, an address
// of the object as linked (a PC minus the load bias). It returns ErrNoFDE
// when no FDE covers addr.
func (t *Table) RowAt(addr uint64) (Row, error) {
	var f fde
	var c cie
	err := ErrNoFDE
	sec := &t.eh
	if len(t.ehIndex) > 0 {
		err = t.eh.find(t.ehIndex, addr, &f, &c)
	}
	if errors.Is(err, ErrNoFDE) && len(t.debugIndex) > 0 {
		sec = &t.debug
		err = t.debug.find(t.debugIndex, addr, &f, &c)
	}
	if err != nil {
		return Row{}, err
	}
	return evalFDE(sec, &f, addr)
}

// Len returns how many FDEs the table indexes.
func (t *Table) Len() int { return len(t.ehIndex) + len(t.debugIndex) }

// Bytes is the memory t holds: its sections and its index.
func (t *Table) Bytes() int64 {
	const ref = int64(unsafe.Sizeof(fdeRef{}))
	return int64(len(t.eh.data)+len(t.debug.data)) + ref*int64(t.Len())
}
