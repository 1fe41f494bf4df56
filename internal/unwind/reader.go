package unwind

import "encoding/binary"

// reader decodes little-endian DWARF data from a section. The first error
// sticks: later reads return zero, so a parse checks r.err once at the end
// of a record.
type reader struct {
	sec  string
	b    []byte
	off  int
	addr uint64 // virtual address of b[0], for pcrel pointers
	err  error
}

func (r *reader) fail(off int, msg string) {
	if r.err == nil {
		r.err = &FormatError{Section: r.sec, Off: off, Msg: msg}
	}
}

func (r *reader) need(n int) bool {
	if r.err != nil {
		return false
	}
	if n < 0 || n > len(r.b)-r.off {
		r.fail(r.off, "truncated")
		return false
	}
	return true
}

func (r *reader) u8() uint8 {
	if !r.need(1) {
		return 0
	}
	v := r.b[r.off]
	r.off++
	return v
}

func (r *reader) u16() uint16 {
	if !r.need(2) {
		return 0
	}
	v := binary.LittleEndian.Uint16(r.b[r.off:])
	r.off += 2
	return v
}

func (r *reader) u32() uint32 {
	if !r.need(4) {
		return 0
	}
	v := binary.LittleEndian.Uint32(r.b[r.off:])
	r.off += 4
	return v
}

func (r *reader) u64() uint64 {
	if !r.need(8) {
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b[r.off:])
	r.off += 8
	return v
}

func (r *reader) uleb() uint64 {
	var v uint64
	start := r.off
	for shift := uint(0); ; shift += 7 {
		if !r.need(1) {
			return 0
		}
		c := r.b[r.off]
		r.off++
		if shift < 64 {
			v |= uint64(c&0x7f) << shift
		}
		if c&0x80 == 0 {
			return v
		}
		if shift > 70 {
			r.fail(start, "LEB128 longer than 10 bytes")
			return 0
		}
	}
}

func (r *reader) sleb() int64 {
	var v int64
	start := r.off
	for shift := uint(0); ; shift += 7 {
		if !r.need(1) {
			return 0
		}
		c := r.b[r.off]
		r.off++
		if shift < 64 {
			v |= int64(c&0x7f) << shift
		}
		if c&0x80 == 0 {
			if shift+7 < 64 && c&0x40 != 0 {
				v |= -1 << (shift + 7)
			}
			return v
		}
		if shift > 70 {
			r.fail(start, "LEB128 longer than 10 bytes")
			return 0
		}
	}
}

func (r *reader) bytes(n uint64) []byte {
	if n > uint64(len(r.b)) || !r.need(int(n)) {
		r.fail(r.off, "truncated")
		return nil
	}
	v := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return v
}

// cstring reads a NUL-terminated string.
func (r *reader) cstring() string {
	if r.err != nil {
		return ""
	}
	for i := r.off; i < len(r.b); i++ {
		if r.b[i] == 0 {
			s := string(r.b[r.off:i])
			r.off = i + 1
			return s
		}
	}
	r.fail(r.off, "unterminated string")
	return ""
}

// Pointer encodings of .eh_frame (DW_EH_PE_*, LSB 4.1 "Exception Frames").
const (
	peAbsptr  = 0x00
	peULEB128 = 0x01
	peUdata2  = 0x02
	peUdata4  = 0x03
	peUdata8  = 0x04
	peSLEB128 = 0x09
	peSdata2  = 0x0a
	peSdata4  = 0x0b
	peSdata8  = 0x0c

	pePCRel    = 0x10
	peTextRel  = 0x20
	peDataRel  = 0x30
	peFuncRel  = 0x40
	peAligned  = 0x50
	peIndirect = 0x80
	peOmit     = 0xff
)

// pointer reads a value in encoding enc. dataBase is the base of datarel
// pointers (.eh_frame_hdr's address there). Indirect and textrel
// pointers, which need memory or a text base this package does not have,
// are ErrUnsupported.
func (r *reader) pointer(enc uint8, dataBase uint64) (uint64, error) {
	if enc == peOmit {
		return 0, nil
	}
	start := r.off
	fieldAddr := r.addr + uint64(r.off)
	var v uint64
	switch enc & 0x0f {
	case peAbsptr, peUdata8, peSdata8:
		v = r.u64()
	case peULEB128:
		v = r.uleb()
	case peUdata2:
		v = uint64(r.u16())
	case peUdata4:
		v = uint64(r.u32())
	case peSLEB128:
		v = uint64(r.sleb())
	case peSdata2:
		v = uint64(int64(int16(r.u16())))
	case peSdata4:
		v = uint64(int64(int32(r.u32())))
	default:
		r.fail(start, "unknown pointer format")
		return 0, r.err
	}
	if r.err != nil {
		return 0, r.err
	}
	if enc&peIndirect != 0 {
		return 0, ErrUnsupported
	}
	switch enc & 0x70 {
	case 0:
	case pePCRel:
		v += fieldAddr
	case peDataRel:
		v += dataBase
	case peTextRel, peFuncRel, peAligned:
		return 0, ErrUnsupported
	default:
		r.fail(start, "unknown pointer application")
		return 0, r.err
	}
	return v, nil
}

// pointerValue reads a value in the format of enc without applying it: the
// pc_range of an FDE is a length, not an address.
func pointerValue(r *reader, enc uint8) uint64 {
	v, _ := r.pointer(enc&0x0f, 0)
	return v
}
