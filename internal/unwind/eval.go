package unwind

// DW_CFA_* opcodes (DWARF 5, 6.4.2; GNU extensions from binutils'
// include/dwarf2.def).
const (
	cfaAdvanceLoc        = 0x40 // high 2 bits; delta in the low 6
	cfaOffset            = 0x80 // high 2 bits; register in the low 6
	cfaRestore           = 0xc0 // high 2 bits; register in the low 6
	cfaNop               = 0x00
	cfaSetLoc            = 0x01
	cfaAdvanceLoc1       = 0x02
	cfaAdvanceLoc2       = 0x03
	cfaAdvanceLoc4       = 0x04
	cfaOffsetExtended    = 0x05
	cfaRestoreExtended   = 0x06
	cfaUndefined         = 0x07
	cfaSameValue         = 0x08
	cfaRegister          = 0x09
	cfaRememberState     = 0x0a
	cfaRestoreState      = 0x0b
	cfaDefCFA            = 0x0c
	cfaDefCFARegister    = 0x0d
	cfaDefCFAOffset      = 0x0e
	cfaDefCFAExpression  = 0x0f
	cfaExpression        = 0x10
	cfaOffsetExtendedSF  = 0x11
	cfaDefCFASF          = 0x12
	cfaDefCFAOffsetSF    = 0x13
	cfaValOffset         = 0x14
	cfaValOffsetSF       = 0x15
	cfaValExpression     = 0x16
	cfaGNUWindowSave     = 0x2d // arm64: AARCH64_negate_ra_state
	cfaGNUArgsSize       = 0x2e
	cfaGNUNegOffsetExtSF = 0x2f
)

// program is what evaluating a row needs from the CIE and FDE.
type program struct {
	sec       string
	codeAlign uint64
	dataAlign int64
	raReg     uint64
	fdeEnc    uint8
	addr      uint64 // section address, for DW_CFA_set_loc pcrel
	cieInsns  []byte
	cieOff    int
	fdeInsns  []byte
	fdeOff    int
	start     uint64 // the FDE's first address
	signal    bool
	eh        bool
}

func evalFDE(s *frameSection, f *fde, addr uint64) (Row, error) {
	p := program{
		sec: s.name, codeAlign: f.cie.codeAlign, dataAlign: f.cie.dataAlign,
		raReg: f.cie.raReg, fdeEnc: f.cie.fdeEnc, addr: s.addr,
		cieInsns: f.cie.insns, cieOff: f.cie.insnsOff,
		fdeInsns: f.insns, fdeOff: f.insnsOff,
		start: f.start, signal: f.cie.signal, eh: s.eh,
	}
	if !s.eh {
		p.fdeEnc = peAbsptr
	}
	return p.eval(addr)
}

// EvalCFI runs CIE initial instructions then FDE instructions of an FDE
// starting at start, stopping at the first row past addr. It is the
// interpreter behind Table.RowAt, exposed for tests and fuzzing. Offsets in
// errors count from the start of cieInsns and fdeInsns.
func EvalCFI(cieInsns, fdeInsns []byte, codeAlign uint64, dataAlign int64, raReg, start, addr uint64) (Row, error) {
	p := program{
		sec: "CFA program", codeAlign: codeAlign, dataAlign: dataAlign, raReg: raReg,
		cieInsns: cieInsns, fdeInsns: fdeInsns, start: start, eh: true,
	}
	return p.eval(addr)
}

type evalState struct {
	row     Row
	initial Row // after the CIE's instructions, for DW_CFA_restore
	stack   []Row
	steps   int
}

func (p *program) eval(addr uint64) (Row, error) {
	st := evalState{row: Row{RAReg: p.raReg, Signal: p.signal}}
	if err := p.run(&st, p.cieInsns, p.cieOff, false, 0, 0); err != nil {
		return Row{}, err
	}
	st.initial = st.row
	if err := p.run(&st, p.fdeInsns, p.fdeOff, true, p.start, addr); err != nil {
		return Row{}, err
	}
	return st.row, nil
}

// run interprets insns. In an FDE (fde set) it stops once the location
// passes addr; a CIE's instructions describe the entry point and have no
// locations.
func (p *program) run(st *evalState, insns []byte, base int, fde bool, loc, addr uint64) error {
	r := &reader{sec: p.sec, b: insns, addr: p.addr + uint64(base)}
	errAt := func(off int, msg string) error {
		return &FormatError{Section: p.sec, Off: base + off, Msg: msg}
	}
	advance := func(delta uint64) bool {
		next := loc + delta*p.codeAlign
		if next < loc { // wrapped: no row can follow
			return false
		}
		loc = next
		return !fde || loc <= addr
	}
	for r.off < len(insns) {
		st.steps++
		if st.steps > maxSteps {
			return ErrTooComplex
		}
		opOff := r.off
		op := r.u8()
		var reg uint64
		switch op & 0xc0 {
		case cfaAdvanceLoc:
			if !advance(uint64(op & 0x3f)) {
				return nil
			}
			continue
		case cfaOffset:
			st.set(uint64(op&0x3f), Rule{Kind: RuleOffset, Offset: int64(r.uleb()) * p.dataAlign})
			continue
		case cfaRestore:
			st.restore(uint64(op & 0x3f))
			continue
		}
		switch op {
		case cfaNop:
		case cfaSetLoc:
			v, err := r.pointer(p.fdeEnc, 0)
			if err != nil && r.err == nil { // ErrUnsupported; format errors get their offset below
				return err
			}
			if err != nil {
				break
			}
			if v < loc {
				return errAt(opOff, "DW_CFA_set_loc goes backwards")
			}
			loc = v
			if fde && loc > addr {
				return nil
			}
		case cfaAdvanceLoc1:
			if !advance(uint64(r.u8())) && r.err == nil {
				return nil
			}
		case cfaAdvanceLoc2:
			if !advance(uint64(r.u16())) && r.err == nil {
				return nil
			}
		case cfaAdvanceLoc4:
			if !advance(uint64(r.u32())) && r.err == nil {
				return nil
			}
		case cfaOffsetExtended:
			reg = r.uleb()
			st.set(reg, Rule{Kind: RuleOffset, Offset: int64(r.uleb()) * p.dataAlign})
		case cfaOffsetExtendedSF:
			reg = r.uleb()
			st.set(reg, Rule{Kind: RuleOffset, Offset: r.sleb() * p.dataAlign})
		case cfaGNUNegOffsetExtSF:
			reg = r.uleb()
			st.set(reg, Rule{Kind: RuleOffset, Offset: -int64(r.uleb()) * p.dataAlign})
		case cfaValOffset:
			reg = r.uleb()
			st.set(reg, Rule{Kind: RuleValOffset, Offset: int64(r.uleb()) * p.dataAlign})
		case cfaValOffsetSF:
			reg = r.uleb()
			st.set(reg, Rule{Kind: RuleValOffset, Offset: r.sleb() * p.dataAlign})
		case cfaRestoreExtended:
			st.restore(r.uleb())
		case cfaUndefined:
			st.set(r.uleb(), Rule{Kind: RuleUndefined})
		case cfaSameValue:
			st.set(r.uleb(), Rule{Kind: RuleSame})
		case cfaRegister:
			reg = r.uleb()
			src := r.uleb()
			if src >= NumRegs {
				st.set(reg, Rule{Kind: RuleUnsupported})
			} else {
				st.set(reg, Rule{Kind: RuleRegister, Reg: uint16(src)})
			}
		case cfaRememberState:
			if len(st.stack) >= maxStateStack {
				return ErrTooComplex
			}
			st.stack = append(st.stack, st.row)
		case cfaRestoreState:
			if len(st.stack) == 0 {
				return errAt(opOff, "DW_CFA_restore_state without remember_state")
			}
			// The CFA rule is part of the state (DWARF 5 6.4.2.4).
			st.row = st.stack[len(st.stack)-1]
			st.stack = st.stack[:len(st.stack)-1]
		case cfaDefCFA:
			reg = r.uleb()
			st.row.CFA = cfaReg(reg, int64(r.uleb()))
		case cfaDefCFASF:
			reg = r.uleb()
			st.row.CFA = cfaReg(reg, r.sleb()*p.dataAlign)
		case cfaDefCFARegister:
			reg = r.uleb()
			off := st.row.CFA.Offset
			st.row.CFA = cfaReg(reg, off)
		case cfaDefCFAOffset:
			st.row.CFA.Offset = int64(r.uleb())
			if st.row.CFA.Kind != CFARegOffset {
				st.row.CFA.Kind = CFAUnsupported
			}
		case cfaDefCFAOffsetSF:
			st.row.CFA.Offset = r.sleb() * p.dataAlign
			if st.row.CFA.Kind != CFARegOffset {
				st.row.CFA.Kind = CFAUnsupported
			}
		case cfaDefCFAExpression:
			expr := r.bytes(r.uleb())
			st.row.CFA = parseCFAExpression(expr)
		case cfaExpression, cfaValExpression:
			reg = r.uleb()
			r.bytes(r.uleb())
			st.set(reg, Rule{Kind: RuleUnsupported})
		case cfaGNUArgsSize:
			r.uleb() // bytes of outgoing arguments: the CFA already accounts for them
		case cfaGNUWindowSave:
			// arm64 pointer authentication toggles whether LR is signed;
			// stripping PAC bits is the unwinder's business, not the row's.
		default:
			return errAt(opOff, "unknown DW_CFA opcode")
		}
		if r.err != nil {
			if fe, ok := r.err.(*FormatError); ok {
				fe.Off += base
			}
			return r.err
		}
	}
	return nil
}

func cfaReg(reg uint64, off int64) CFARule {
	if reg >= NumRegs {
		return CFARule{Kind: CFAUnsupported}
	}
	return CFARule{Kind: CFARegOffset, Reg: uint16(reg), Offset: off}
}

// DWARF expression opcodes of the .plt CFA pattern.
const (
	opLit0  = 0x30
	opLit3  = 0x33
	opLit15 = 0x3f
	opAnd   = 0x1a
	opGe    = 0x2a
	opShl   = 0x24
	opPlus  = 0x22
	opBreg0 = 0x70
)

// parseCFAExpression recognises the one CFA expression compilers and linkers
// emit for x86-64 lazy-binding .plt entries (binutils
// elf_x86_64_eh_frame_plt):
//
//	DW_OP_breg7 (rsp) N; DW_OP_breg16 (rip) 0; DW_OP_lit15; DW_OP_and;
//	DW_OP_litK; DW_OP_ge; DW_OP_lit3; DW_OP_shl; DW_OP_plus
//
// that is rsp + N + ((rip & 15) >= K ? 8 : 0): each 16-byte entry pushes
// 8 bytes at its K-th byte. Any other expression is CFAUnsupported.
func parseCFAExpression(expr []byte) CFARule {
	r := &reader{b: expr}
	if r.u8() != opBreg0+RegAMD64RSP {
		return CFARule{Kind: CFAUnsupported}
	}
	n := r.sleb()
	// DW_OP_breg16 is 0x80: one byte, then SLEB offset 0.
	tail := r.bytes(uint64(len(expr) - r.off))
	if r.err != nil || len(tail) != 9 {
		return CFARule{Kind: CFAUnsupported}
	}
	k := tail[4]
	if tail[0] != opBreg0+RegAMD64RA || tail[1] != 0 || tail[2] != opLit15 || tail[3] != opAnd ||
		k < opLit0 || k > opLit15 || tail[5] != opGe || tail[6] != opLit3 || tail[7] != opShl || tail[8] != opPlus {
		return CFARule{Kind: CFAUnsupported}
	}
	return CFARule{Kind: CFAPLT, Reg: RegAMD64RSP, Offset: n, Threshold: k - opLit0}
}

func (st *evalState) set(reg uint64, rule Rule) {
	if reg < NumRegs {
		st.row.Regs[reg] = rule
	}
}

func (st *evalState) restore(reg uint64) {
	if reg < NumRegs {
		st.row.Regs[reg] = st.initial.Regs[reg]
	}
}
