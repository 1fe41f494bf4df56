package perfmap

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/cpuwhy/cpuwhy/internal/unwind"
)

// TestTrampolineRows checks the rules made for each shape of CPython's
// trampoline at every instruction: CFA %rsp+8 before the sub and after
// the add, %rsp+16 around the call, the return address at CFA-8.
func TestTrampolineRows(t *testing.T) {
	for _, tr := range trampolines {
		prefix := len(tr.code) - 11
		for off := range len(tr.code) {
			row, err := tr.table.RowAt(uint64(off))
			if err != nil {
				t.Fatalf("%d-byte shape, offset %d: %v", len(tr.code), off, err)
			}
			want := int64(8)
			if off >= prefix+4 && off < prefix+10 {
				want = 16
			}
			if row.CFA.Kind != unwind.CFARegOffset || row.CFA.Reg != unwind.RegAMD64RSP || row.CFA.Offset != want {
				t.Errorf("%d-byte shape, offset %d: CFA %+v, want rsp+%d", len(tr.code), off, row.CFA, want)
			}
			if ra := row.RA(); ra.Kind != unwind.RuleOffset || ra.Offset != -8 {
				t.Errorf("%d-byte shape, offset %d: return address %+v, want CFA-8", len(tr.code), off, ra)
			}
			if rbp := row.Regs[unwind.RegAMD64RBP]; rbp.Kind != unwind.RuleSame {
				t.Errorf("%d-byte shape, offset %d: rbp %+v, want unchanged", len(tr.code), off, rbp)
			}
		}
		if _, err := tr.table.RowAt(uint64(len(tr.code))); !errors.Is(err, unwind.ErrNoFDE) {
			t.Errorf("%d-byte shape: a row past the code: %v", len(tr.code), err)
		}
	}
}

// memory is a fake process memory: bytes at addresses, and a count of
// reads.
type memory struct {
	at    uint64
	data  []byte
	reads int
}

func (m *memory) ReadAt(p []byte, addr uint64) (int, error) {
	m.reads++
	if addr < m.at || addr+uint64(len(p)) > m.at+uint64(len(m.data)) {
		return 0, errors.New("unmapped")
	}
	return copy(p, m.data[addr-m.at:]), nil
}

// TestUnwindTrampoline unwinds a stack through a trampoline found in the
// map and in memory: the caller's return address is read from CFA-8, its
// frame pointer kept. Code of another shape, or a symbol of another size,
// is left to the frame-pointer fallback.
func TestUnwindTrampoline(t *testing.T) {
	const code = 0x7f0000001000 // trampolines at 0x...1000 (plain), 0x...1010 (CET), 0x...1020 (other code)
	p := newFakeProcess(t)
	p.write("7f0000001000 b py::hot:/app/x.py\n7f0000001010 f py::cet:/app/x.py\n7f0000001020 b py::other:/app/x.py\n7f0000001030 c py::longer:/app/x.py\n")
	in := p.attach(Limits{})
	mem := &memory{at: code, data: make([]byte, 0x40)}
	copy(mem.data, trampolines[0].code)
	copy(mem.data[0x10:], trampolines[1].code)
	copy(mem.data[0x20:], []byte{0x55, 0x48, 0x89, 0xe5, 0xff, 0xd1, 0x5d, 0xc3, 0x90, 0x90, 0x90})
	copy(mem.data[0x30:], trampolines[0].code)
	in.mem = mem

	for _, tt := range []struct {
		pc   uint64
		want bool
	}{
		{code + 5, true}, {code + 0x10 + 9, true}, {code + 0x20 + 5, false}, {code + 0x30 + 5, false}, {code + 0x100, false},
	} {
		table, bias, ok := in.UnwindTable(tt.pc)
		if ok != tt.want || ok && (table == nil || bias != tt.pc&^0xf) {
			t.Errorf("UnwindTable(%#x) = %v, %#x, %v; want %v", tt.pc, table != nil, bias, ok, tt.want)
		}
	}
	reads := mem.reads
	in.UnwindTable(code + 5)
	in.UnwindTable(code + 0x20 + 5)
	if mem.reads != reads {
		t.Errorf("the code of a symbol was read again (%d reads, then %d)", reads, mem.reads)
	}

	// The interpreter returned into the trampoline, at code+6 (after the
	// call), with %rsp 8 below the trampoline's return address.
	const sp, caller, fp = 0x7ffd0000, 0x401234, 0x7ffd0400
	stack := make([]byte, 64)
	binary.LittleEndian.PutUint64(stack[8:], caller)
	lookup := func(pc uint64) (*unwind.Table, uint64, bool) {
		if pc == caller-1 {
			return nil, 0, true // no CFI: the frame-pointer fallback
		}
		return in.UnwindTable(pc)
	}
	var u unwind.Unwinder
	tr := u.Trace(unwind.Regs{PC: code + 6, SP: sp, FP: fp}, unwind.StackCopy{Base: sp, Data: stack}, lookup, 8)
	if len(tr.Frames) < 2 || tr.Frames[0].Method != unwind.MethodCFI || tr.Frames[1].PC != caller || tr.Frames[1].SP != sp+16 {
		t.Fatalf("trace %+v, want the trampoline's frame unwound by its rules to its caller %#x with %%rsp %#x", tr, caller, sp+16)
	}
	// The caller's frame pointer is the interpreter's, unchanged: the
	// fallback reads [fp], outside the stack copy.
	if tr.Stop != unwind.StopMemory || !errors.Is(tr.Err, unwind.ErrOutsideCopy) {
		t.Errorf("the walk ended with %v (%v), want a read at the kept frame pointer %#x", tr.Stop, tr.Err, uint64(fp))
	}
}
