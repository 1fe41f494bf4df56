package hotspot

import (
	"encoding/binary"
	"testing"

	"github.com/cpuwhy/cpuwhy/internal/unwind"
)

// TestFrameTable unwinds a compiled method's frame, laid out as C2 lays
// it out, with the table made for it: past the prologue, the caller is
// found from the frame's size; in it, from the entry's rules.
func TestFrameTable(t *testing.T) {
	const (
		start    = 0x7f0000001000
		size     = 0x200
		frame    = 64 // words: ... saved rbp, return address
		prologue = 12
		sp       = 0x7ffd00000000
		caller   = 0x7f0000009999
		callerFP = 0x7ffd00001000
	)
	tab, err := frameTable(size, frame, prologue)
	if err != nil {
		t.Fatal(err)
	}
	stack := make([]byte, 256)
	binary.LittleEndian.PutUint64(stack[frame-8:], caller)
	binary.LittleEndian.PutUint64(stack[frame-16:], callerFP)
	binary.LittleEndian.PutUint64(stack[0:], caller+1) // what the entry's rules read
	lookup := func(pc uint64) (*unwind.Table, uint64, bool) {
		if pc >= start && pc < start+size {
			return tab, start, true
		}
		return nil, 0, pc >= caller-1 && pc <= caller+1 // looked up at the call, one before
	}
	var u unwind.Unwinder
	for _, tt := range []struct {
		pc         uint64
		wantCaller uint64
	}{
		{start + 0x80, caller}, // past the prologue
		{start, caller + 1},    // at entry: the return address on top
	} {
		tr := u.Trace(unwind.Regs{PC: tt.pc, SP: sp, FP: 0x1234}, unwind.StackCopy{Base: sp, Data: stack}, lookup, 2)
		if len(tr.Frames) < 2 || tr.Frames[1].PC != tt.wantCaller {
			t.Errorf("at %#x: frames %+v (stop %v: %v), want the caller %#x", tt.pc, tr.Frames, tr.Stop, tr.Err, tt.wantCaller)
			continue
		}
		if tt.wantCaller == caller && tr.Frames[1].FP != callerFP {
			t.Errorf("at %#x: the caller's frame pointer is %#x, want %#x (restored from the frame)", tt.pc, tr.Frames[1].FP, uint64(callerFP))
		}
	}
}

// FuzzFrameOf finds a blob in random memory: it must end, and what it
// returns be within its bounds.
func FuzzFrameOf(f *testing.F) {
	f.Add(make([]byte, 512), uint64(0x2000), uint64(0x40))
	f.Add(make([]byte, 8), uint64(1<<64-1), uint64(8)) // a start near the top must not wrap the page walk
	f.Fuzz(func(t *testing.T, mem []byte, start, size uint64) {
		l := jdk17
		l.blobCodeBegin, l.blobCodeEnd, l.blobFrameSize, l.blobFrameComplete = 32, 40, 28, 20
		ms := &methods{l: &l, mem: flat{base: 0x1000, b: mem}, names: map[uint64]cachedMethod{}}
		frame, prologue, ok := ms.frameOf(start, size)
		if ok && (frame < 16 || frame > 8*maxFrameWords || prologue >= size) {
			t.Fatalf("frame %d, prologue %d of a method of %d bytes", frame, prologue, size)
		}
	})
}
