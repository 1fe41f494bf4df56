package unwind

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"
)

// synthetic is a process with one object with CFI at 0x400000 (linked at
// 0) and frame-pointer code at 0x500000 with no CFI.
type synthetic struct {
	table *Table
}

const (
	objBias   = 0x400000
	fpCode    = 0x500000
	stackBase = 0x7000_0000
)

func newSynthetic(t testing.TB) *synthetic {
	eh := &frameBuilder{eh: true, addr: 0x8000}
	c := eh.cie(1, "zR", []byte{pePCRel | peSdata4}, x86CIEInsns)
	eh.fdePCRel(c, 0x1000, 0x100, []byte{cfaDefCFAOffset, 16})                   // an 8-byte frame
	eh.fdePCRel(c, 0x2000, 0x100, []byte{cfaUndefined, 16})                      // clone3: outermost
	eh.fdePCRel(c, 0x1200, 0x100, []byte{cfaDefCFAOffset, 0, cfaOffset | 16, 0}) // CFA = SP: no progress
	eh.fdePCRel(c, 0x3000, 0x100, cat([]byte{cfaDefCFAExpression}, uleb(uint64(len(pltExpr))), pltExpr))
	tab, err := NewTable(Sections{EHFrame: eh.buf.Bytes(), EHFrameAddr: 0x8000})
	if err != nil {
		t.Fatal(err)
	}
	return &synthetic{table: tab}
}

func (s *synthetic) lookup(pc uint64) (*Table, uint64, bool) {
	switch {
	case pc >= objBias && pc < objBias+0x4000:
		return s.table, objBias, true
	case pc >= fpCode && pc < fpCode+0x1000:
		return nil, 0, true
	}
	return nil, 0, false
}

// stack builds a stack copy from words at offsets from stackBase.
func stack(size int, words map[uint64]uint64) StackCopy {
	s := StackCopy{Base: stackBase, Data: make([]byte, size)}
	for off, v := range words {
		binary.LittleEndian.PutUint64(s.Data[off:], v)
	}
	return s
}

func TestUnwindSynthetic(t *testing.T) {
	syn := newSynthetic(t)
	for _, tt := range []struct {
		name    string
		u       Unwinder
		regs    Regs
		mem     StackCopy
		max     int
		want    []uint64
		methods []Method
		stop    Stop
	}{
		{
			name: "CFI to the outermost frame",
			regs: Regs{PC: objBias + 0x1010, SP: stackBase},
			mem:  stack(64, map[uint64]uint64{8: objBias + 0x2005}),
			want: []uint64{objBias + 0x1010, objBias + 0x2005}, methods: []Method{MethodCFI, MethodNone},
			stop: StopOutermost,
		},
		{
			name: "frame pointers to a zero return address",
			regs: Regs{PC: fpCode + 0x10, SP: stackBase, FP: stackBase + 32},
			mem:  stack(128, map[uint64]uint64{32: stackBase + 64, 40: fpCode + 0x20}),
			want: []uint64{fpCode + 0x10, fpCode + 0x20}, methods: []Method{MethodFramePointer, MethodNone},
			stop: StopZeroRA,
		},
		{
			name: "frame pointers then CFI",
			regs: Regs{PC: fpCode + 0x10, SP: stackBase, FP: stackBase + 32},
			// fp+16 is the caller's SP: 48; its CFA 64, RA at 56.
			mem:  stack(128, map[uint64]uint64{32: 0, 40: objBias + 0x1001, 56: objBias + 0x2001}),
			want: []uint64{fpCode + 0x10, objBias + 0x1001, objBias + 0x2001}, methods: []Method{MethodFramePointer, MethodCFI, MethodNone},
			stop: StopOutermost,
		},
		{
			name: "frame pointers only ignore CFI",
			u:    Unwinder{FramePointersOnly: true},
			regs: Regs{PC: objBias + 0x1010, SP: stackBase, FP: stackBase + 16},
			// The saved frame pointer lies below the caller's SP: unusable.
			mem:  stack(64, map[uint64]uint64{8: objBias + 0x2005, 16: stackBase + 8, 24: fpCode + 1}),
			want: []uint64{objBias + 0x1010, fpCode + 1}, methods: []Method{MethodFramePointer, MethodNone},
			stop: StopNoInfo,
		},
		{
			// A goroutine's first function saved rbp 0, runtime.goexit's.
			name: "frame pointers to a zero frame pointer",
			regs: Regs{PC: fpCode + 0x10, SP: stackBase, FP: stackBase + 32},
			mem:  stack(128, map[uint64]uint64{32: 0, 40: fpCode + 0x20}),
			want: []uint64{fpCode + 0x10, fpCode + 0x20}, methods: []Method{MethodFramePointer, MethodNone},
			stop: StopZeroFP,
		},
		{
			// rbp 0 kept by CFI is a general register's value, not the
			// psABI's mark: no frame information, not the stack's end.
			name: "zero frame pointer after CFI",
			regs: Regs{PC: objBias + 0x1010, SP: stackBase, FP: 0},
			mem:  stack(64, map[uint64]uint64{8: fpCode + 0x20}),
			want: []uint64{objBias + 0x1010, fpCode + 0x20}, methods: []Method{MethodCFI, MethodNone},
			stop: StopNoInfo,
		},
		{
			name: "unmapped return address is not a frame",
			regs: Regs{PC: objBias + 0x1010, SP: stackBase},
			mem:  stack(64, map[uint64]uint64{8: 0x900000}),
			want: []uint64{objBias + 0x1010}, methods: []Method{MethodCFI},
			stop: StopUnmapped,
		},
		{
			name: "CFA that does not move",
			regs: Regs{PC: objBias + 0x1210, SP: stackBase},
			mem:  stack(64, map[uint64]uint64{0: objBias + 0x1005}),
			want: []uint64{objBias + 0x1210}, methods: []Method{MethodNone},
			stop: StopNoProgress,
		},
		{
			name: "end of the stack copy",
			regs: Regs{PC: objBias + 0x1010, SP: stackBase},
			mem:  stack(8, nil),
			want: []uint64{objBias + 0x1010}, methods: []Method{MethodNone},
			stop: StopMemory,
		},
		{
			name: "frame limit",
			regs: Regs{PC: objBias + 0x1010, SP: stackBase},
			mem:  stack(64, map[uint64]uint64{8: objBias + 0x2005}),
			max:  1,
			want: []uint64{objBias + 0x1010}, methods: []Method{MethodCFI},
			stop: StopMaxFrames,
		},
		{
			name: "plt entry before its push",
			regs: Regs{PC: objBias + 0x3006, SP: stackBase},
			mem:  stack(64, map[uint64]uint64{0: objBias + 0x2005}),
			want: []uint64{objBias + 0x3006, objBias + 0x2005}, methods: []Method{MethodCFI, MethodNone},
			stop: StopOutermost,
		},
		{
			name: "plt entry after its push",
			regs: Regs{PC: objBias + 0x300b, SP: stackBase},
			mem:  stack(64, map[uint64]uint64{8: objBias + 0x2005}),
			want: []uint64{objBias + 0x300b, objBias + 0x2005}, methods: []Method{MethodCFI, MethodNone},
			stop: StopOutermost,
		},
		{
			name: "no frame information",
			regs: Regs{PC: fpCode + 0x10, SP: stackBase, FP: 0},
			mem:  stack(64, nil),
			want: []uint64{fpCode + 0x10}, methods: []Method{MethodNone},
			stop: StopNoInfo,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			max := tt.max
			if max == 0 {
				max = 16
			}
			tr := tt.u.Trace(tt.regs, tt.mem, syn.lookup, max)
			var pcs []uint64
			var methods []Method
			for _, f := range tr.Frames {
				pcs, methods = append(pcs, f.PC), append(methods, f.Method)
			}
			if !slices.Equal(pcs, tt.want) || !slices.Equal(methods, tt.methods) || tr.Stop != tt.stop {
				t.Errorf("got %#x %v stop %v (%v), want %#x %v stop %v", pcs, methods, tr.Stop, tr.Err, tt.want, tt.methods, tt.stop)
			}
			if got := tt.u.Unwind(tt.regs, tt.mem, syn.lookup, max); !slices.Equal(got, pcs) {
				t.Errorf("Unwind = %#x, Trace gave %#x", got, pcs)
			}
		})
	}
}

func TestStackCopy(t *testing.T) {
	s := StackCopy{Base: 0x1000, Data: []byte{1, 2, 3, 4, 5, 6, 7, 8}}
	for _, tt := range []struct {
		addr uint64
		n    int
		ok   bool
	}{
		{0x1000, 8, true}, {0x1004, 4, true}, {0x1008, 0, true},
		{0x1004, 8, false}, {0xfff, 1, false}, {0x1009, 0, false}, {^uint64(0), 2, false},
	} {
		p := make([]byte, tt.n)
		_, err := s.ReadAt(p, tt.addr)
		if (err == nil) != tt.ok || err != nil && !errors.Is(err, ErrOutsideCopy) {
			t.Errorf("ReadAt(%d bytes at %#x) = %v, want ok=%v", tt.n, tt.addr, err, tt.ok)
		}
	}
}
