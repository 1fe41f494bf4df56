package ebpf

import (
	"encoding/binary"
	"testing"
	"unsafe"
)

// FuzzParseChain: any record is refused or parsed into at most MaxSteps
// frames, each from the record's own bytes.
func FuzzParseChain(f *testing.F) {
	rec := make([]byte, headerSize+2*frameSize)
	binary.LittleEndian.PutUint64(rec, 12345)
	binary.LittleEndian.PutUint32(rec[8:], 42)
	binary.LittleEndian.PutUint16(rec[12:], 2)
	f.Add(rec)
	f.Add(rec[:headerSize+frameSize])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var c Chain
		if err := ParseChain(b, &c); err != nil {
			return
		}
		if len(c.Frames) > MaxSteps || headerSize+len(c.Frames)*frameSize > len(b) {
			t.Fatalf("%d frames from %d bytes", len(c.Frames), len(b))
		}
	})
}

// TestParseChain: the record the program writes is read field by field.
func TestParseChain(t *testing.T) {
	rec := make([]byte, headerSize+2*frameSize)
	le := binary.LittleEndian
	le.PutUint64(rec, 12345)
	le.PutUint32(rec[8:], 42)
	le.PutUint16(rec[12:], 2)
	le.PutUint16(rec[14:], More)
	le.PutUint64(rec[16:], 0xabc)
	le.PutUint32(rec[24:], 1)
	le.PutUint32(rec[28:], 1)
	for i := range 2 {
		f := rec[headerSize+i*frameSize:]
		le.PutUint64(f, uint64(0x1000+i))
		le.PutUint64(f[8:], uint64(0x2000+i))
		le.PutUint64(f[16:], uint64(0x3000+i))
		f[24], f[25] = byte(i+1), byte(i)
	}
	var c Chain
	if err := ParseChain(rec, &c); err != nil {
		t.Fatal(err)
	}
	want := Chain{Time: 12345, TID: 42, Flags: More, GILHolder: 0xabc, GILLocked: 1, GILRead: true, Frames: []Frame{{0x1000, 0x2000, 0x3000, 1, 0}, {0x1001, 0x2001, 0x3001, 2, 1}}}
	if c.Time != want.Time || c.TID != want.TID || c.Flags != want.Flags || c.GILHolder != want.GILHolder || c.GILLocked != want.GILLocked || c.GILRead != want.GILRead || len(c.Frames) != 2 || c.Frames[0] != want.Frames[0] || c.Frames[1] != want.Frames[1] {
		t.Errorf("parsed %+v, want %+v", c, want)
	}
	if err := ParseChain(rec[:len(rec)-1], &c); err == nil {
		t.Errorf("a record shorter than its frames was parsed")
	}
}

// TestRecordSize: the record and frame sizes ParseChain reads by are the
// C structures' (the generated Go type has their layout).
func TestRecordSize(t *testing.T) {
	if got, want := unsafe.Sizeof(pyframesPyRecord{}), uintptr(RecordSize); got != want {
		t.Errorf("struct record is %d bytes, ParseChain reads %d", got, want)
	}
	if got := unsafe.Sizeof(pyframesPyRecord{}.Frames[0]); got != frameSize {
		t.Errorf("struct frame is %d bytes, ParseChain reads %d", got, frameSize)
	}
}
