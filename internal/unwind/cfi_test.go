package unwind

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"testing"
)

// frameBuilder assembles .eh_frame or .debug_frame bytes for table tests.
type frameBuilder struct {
	buf  bytes.Buffer
	eh   bool
	addr uint64 // section address
}

func uleb(v uint64) []byte {
	var out []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			c |= 0x80
		}
		out = append(out, c)
		if v == 0 {
			return out
		}
	}
}

func sleb(v int64) []byte {
	var out []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		done := v == 0 && c&0x40 == 0 || v == -1 && c&0x40 != 0
		if !done {
			c |= 0x80
		}
		out = append(out, c)
		if done {
			return out
		}
	}
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// entry appends a 32-bit-length entry whose id field is id and returns its
// offset.
func (b *frameBuilder) entry(id uint32, body []byte) int {
	off := b.buf.Len()
	binary.Write(&b.buf, binary.LittleEndian, uint32(4+len(body)))
	binary.Write(&b.buf, binary.LittleEndian, id)
	b.buf.Write(body)
	return off
}

// cie appends a CIE (code align 1, data align -8, RA column 16).
func (b *frameBuilder) cie(version byte, aug string, augData []byte, insns []byte) int {
	id := uint32(0)
	if !b.eh {
		id = 0xffffffff
	}
	body := cat([]byte{version}, []byte(aug), []byte{0})
	if version == 4 {
		body = append(body, 8, 0)
	}
	body = cat(body, uleb(1), sleb(-8))
	if version == 1 {
		body = append(body, 16)
	} else {
		body = append(body, uleb(16)...)
	}
	if len(aug) > 0 && aug[0] == 'z' {
		body = cat(body, uleb(uint64(len(augData))), augData)
	}
	return b.entry(id, cat(body, insns))
}

// fdePCRel appends an .eh_frame FDE with pcrel|sdata4 addresses and a
// "z" augmentation length of 0.
func (b *frameBuilder) fdePCRel(cieOff int, start, length uint32, insns []byte) int {
	off := b.buf.Len()
	idField := off + 4
	fieldAddr := b.addr + uint64(idField+4)
	var body []byte
	body = binary.LittleEndian.AppendUint32(body, uint32(int32(int64(start)-int64(fieldAddr))))
	body = binary.LittleEndian.AppendUint32(body, length)
	body = append(body, 0)
	return b.entry(uint32(idField-cieOff), cat(body, insns))
}

// fdeDebug appends a .debug_frame FDE with absolute 8-byte addresses.
func (b *frameBuilder) fdeDebug(cieOff int, start, length uint64, insns []byte) int {
	var body []byte
	body = binary.LittleEndian.AppendUint64(body, start)
	body = binary.LittleEndian.AppendUint64(body, length)
	return b.entry(uint32(cieOff), cat(body, insns))
}

// The CIE initial instructions of every x86-64 GCC object: CFA = rsp+8,
// return address at CFA-8.
var x86CIEInsns = []byte{cfaDefCFA, 7, 8, cfaOffset | 16, 1}

// The .plt CFA expression binutils emits, with threshold 11.
var pltExpr = []byte{opBreg0 + 7, 8, opBreg0 + 16, 0, opLit15, opAnd, opLit0 + 11, opGe, opLit3, opShl, opPlus}

func TestRowAt(t *testing.T) {
	const addr = 0x2000
	eh := &frameBuilder{eh: true, addr: addr}
	c := eh.cie(1, "zR", []byte{pePCRel | peSdata4}, x86CIEInsns)
	// push rbp at 0x1001, mov rsp,rbp at 0x1004; remember/restore around
	// an epilogue at 0x1010.
	eh.fdePCRel(c, 0x1000, 0x20, []byte{
		cfaAdvanceLoc | 1, cfaDefCFAOffset, 16, cfaOffset | 6, 2,
		cfaAdvanceLoc | 3, cfaDefCFARegister, 6,
		cfaAdvanceLoc | 12, cfaRememberState, cfaDefCFA, 7, 8, cfaRestore | 6,
		cfaAdvanceLoc | 1, cfaRestoreState,
	})
	eh.fdePCRel(c, 0x1100, 0x40, cat([]byte{cfaDefCFAOffset, 16, cfaAdvanceLoc | 6, cfaDefCFAExpression}, uleb(uint64(len(pltExpr))), pltExpr))
	// A signal trampoline and an outermost frame.
	s := eh.cie(1, "zRS", []byte{pePCRel | peSdata4}, x86CIEInsns)
	eh.fdePCRel(s, 0x1200, 0x10, nil)
	eh.fdePCRel(c, 0x1300, 0x10, []byte{cfaUndefined, 16})
	eh.fdePCRel(c, 0x1400, 0x10, cat([]byte{cfaValOffsetSF, 6}, sleb(2), []byte{cfaRegister, 3, 12, cfaGNUArgsSize, 16, cfaNop}))
	eh.buf.Write([]byte{0, 0, 0, 0}) // terminator

	dbg := &frameBuilder{}
	dc := dbg.cie(4, "", nil, x86CIEInsns)
	dbg.fdeDebug(dc, 0x5000, 0x10, []byte{cfaAdvanceLoc4, 4, 0, 0, 0, cfaDefCFAOffsetSF, 0x7e /* -2*-8 = 16 */})
	dc1 := dbg.cie(1, "", nil, x86CIEInsns)
	dbg.fdeDebug(dc1, 0x6000, 0x10, []byte{cfaSetLoc, 0x08, 0x60, 0, 0, 0, 0, 0, 0, cfaDefCFAOffset, 24})

	tab, err := NewTable(Sections{EHFrame: eh.buf.Bytes(), EHFrameAddr: addr, DebugFrame: dbg.buf.Bytes()})
	if err != nil {
		t.Fatal(err)
	}
	if tab.Len() != 7 {
		t.Errorf("Len = %d, want 7", tab.Len())
	}
	cfa := func(reg uint16, off int64) CFARule { return CFARule{Kind: CFARegOffset, Reg: reg, Offset: off} }
	ra := Rule{Kind: RuleOffset, Offset: -8}
	for _, tt := range []struct {
		name    string
		pc      uint64
		cfa     CFARule
		rbp, ra Rule
		rbx     Rule
		signal  bool
		err     error
	}{
		{name: "entry", pc: 0x1000, cfa: cfa(7, 8), ra: ra},
		{name: "after push", pc: 0x1001, cfa: cfa(7, 16), rbp: Rule{Kind: RuleOffset, Offset: -16}, ra: ra},
		{name: "frame pointer", pc: 0x100f, cfa: cfa(6, 16), rbp: Rule{Kind: RuleOffset, Offset: -16}, ra: ra},
		{name: "remembered epilogue", pc: 0x1010, cfa: cfa(7, 8), ra: ra},
		{name: "restored state", pc: 0x1011, cfa: cfa(6, 16), rbp: Rule{Kind: RuleOffset, Offset: -16}, ra: ra},
		{name: "last byte", pc: 0x101f, cfa: cfa(6, 16), rbp: Rule{Kind: RuleOffset, Offset: -16}, ra: ra},
		{name: "gap", pc: 0x1020, err: ErrNoFDE},
		{name: "before all", pc: 0x10, err: ErrNoFDE},
		{name: "plt0", pc: 0x1100, cfa: cfa(7, 16), ra: ra},
		{name: "plt entries", pc: 0x1106, cfa: CFARule{Kind: CFAPLT, Reg: 7, Offset: 8, Threshold: 11}, ra: ra},
		{name: "signal frame", pc: 0x1200, cfa: cfa(7, 8), ra: ra, signal: true},
		{name: "outermost", pc: 0x1300, cfa: cfa(7, 8), ra: Rule{Kind: RuleUndefined}},
		{name: "val_offset and register", pc: 0x1400, cfa: cfa(7, 8), ra: ra, rbp: Rule{Kind: RuleValOffset, Offset: -16}, rbx: Rule{Kind: RuleRegister, Reg: 12}},
		{name: "debug_frame v4", pc: 0x5004, cfa: cfa(7, 16), ra: ra},
		{name: "debug_frame v4 before advance", pc: 0x5003, cfa: cfa(7, 8), ra: ra},
		{name: "debug_frame v1 set_loc", pc: 0x6008, cfa: cfa(7, 24), ra: ra},
		{name: "after debug_frame", pc: 0x6010, err: ErrNoFDE},
	} {
		t.Run(tt.name, func(t *testing.T) {
			row, err := tab.RowAt(tt.pc)
			if tt.err != nil || err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("RowAt(%#x) error %v, want %v", tt.pc, err, tt.err)
				}
				return
			}
			if row.CFA != tt.cfa || row.Regs[RegAMD64RBP] != tt.rbp || row.RA() != tt.ra || row.Regs[3] != tt.rbx || row.Signal != tt.signal {
				t.Errorf("RowAt(%#x) = CFA %+v rbp %+v ra %+v rbx %+v signal %v\nwant CFA %+v rbp %+v ra %+v rbx %+v signal %v",
					tt.pc, row.CFA, row.Regs[RegAMD64RBP], row.RA(), row.Regs[3], row.Signal, tt.cfa, tt.rbp, tt.ra, tt.rbx, tt.signal)
			}
		})
	}
}

func TestMalformed(t *testing.T) {
	good := &frameBuilder{eh: true, addr: 0x2000}
	c := good.cie(1, "zR", []byte{pePCRel | peSdata4}, x86CIEInsns)
	good.fdePCRel(c, 0x1000, 0x10, []byte{cfaAdvanceLoc | 1, cfaDefCFAOffset, 16})
	ok := good.buf.Bytes()
	const fdeOff = 0x16 // the CIE is 4+18 bytes
	for _, tt := range []struct {
		name   string
		data   []byte
		wantAt int // offset the FormatError names, -1: any
	}{
		{name: "truncated length", data: ok[:2], wantAt: 0},
		{name: "length past the end", data: ok[:len(ok)-1], wantAt: fdeOff},
		{name: "bad CIE version", data: patch(ok, 8, 9), wantAt: 8},
		{name: "CIE pointer before the section", data: patch(ok, fdeOff+6, 0xff), wantAt: fdeOff + 4},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewTable(Sections{EHFrame: tt.data, EHFrameAddr: 0x2000})
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("NewTable error %v, want a FormatError", err)
			}
			if tt.wantAt >= 0 && fe.Off != tt.wantAt {
				t.Errorf("error %q at offset %#x, want %#x", err, fe.Off, tt.wantAt)
			}
		})
	}

	// Errors in the instructions surface at lookup, with their offset.
	bad := &frameBuilder{eh: true, addr: 0x2000}
	c = bad.cie(1, "zR", []byte{pePCRel | peSdata4}, x86CIEInsns)
	bad.fdePCRel(c, 0x1000, 0x10, []byte{cfaNop, cfaRestoreState})
	tab, err := NewTable(Sections{EHFrame: bad.buf.Bytes(), EHFrameAddr: 0x2000})
	if err != nil {
		t.Fatal(err)
	}
	_, err = tab.RowAt(0x1000)
	var fe *FormatError
	// length, CIE pointer, pc_begin, pc_range, augmentation length, nop.
	const want = fdeOff + 4 + 4 + 4 + 4 + 1 + 1
	if !errors.As(err, &fe) || fe.Off != want {
		t.Errorf("RowAt error %v, want restore_state without remember_state at %#x", err, want)
	}
}

func patch(b []byte, off int, v byte) []byte {
	out := bytes.Clone(b)
	out[off] = v
	return out
}

// TestHdrMatchesScan checks that the .eh_frame_hdr index and a walk of
// .eh_frame give the same rows for every FDE of libc.
func TestHdrMatchesScan(t *testing.T) {
	f, err := elf.Open(libcPath(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := ELFSections(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.EHFrameHdr) == 0 {
		t.Skip("libc has no .eh_frame_hdr")
	}
	withHdr, err := NewTable(s)
	if err != nil {
		t.Fatal(err)
	}
	s.EHFrameHdr = nil
	scanned, err := NewTable(s)
	if err != nil {
		t.Fatal(err)
	}
	if withHdr.Len() != scanned.Len() {
		t.Errorf("%d FDEs through .eh_frame_hdr, %d by walking .eh_frame", withHdr.Len(), scanned.Len())
	}
	for _, ref := range scanned.ehIndex {
		for _, pc := range []uint64{ref.start, ref.start + 5} {
			a, errA := withHdr.RowAt(pc)
			b, errB := scanned.RowAt(pc)
			if a != b || (errA == nil) != (errB == nil) {
				t.Fatalf("at %#x: hdr %+v %v, scan %+v %v", pc, a, errA, b, errB)
			}
		}
	}
}
