package python

// lineFormat is how a version encodes the line numbers of its code.
type lineFormat int

const (
	lnotab       lineFormat = iota // 3.8-3.9: co_lnotab, byte offsets
	linetable310                   // 3.10: co_linetable, byte offsets
	locations                      // 3.11+: the location table, code units
)

// maxVarintShift bounds a varint of the location table: the input is
// the target's, and a run of continuation bytes must not overflow.
const maxVarintShift = 30

// lineOf returns the line of the instruction at offset at of a code
// object whose line table is table and first line first, or first when
// the table does not say (no line, a damaged table). at is in bytes for
// lnotab and linetable310 (f_lasti*2 on 3.10), in code units for
// locations. The table is the target's: nothing is assumed of it.
func lineOf(format lineFormat, table []byte, first, at int) int {
	if at < 0 {
		return first // a frame that has not begun
	}
	var line int
	switch format {
	case lnotab:
		line = lineLnotab(table, first, at)
	case linetable310:
		line = line310(table, first, at)
	default:
		line = lineLocations(table, first, at)
	}
	if line <= 0 {
		return first
	}
	return line
}

// lineLnotab is PyCode_Addr2Line of 3.8 and 3.9: pairs of (byte offset
// increment, signed line increment).
func lineLnotab(table []byte, first, at int) int {
	line, addr := first, 0
	for i := 0; i+1 < len(table); i += 2 {
		addr += int(table[i])
		if addr > at {
			break
		}
		line += int(int8(table[i+1]))
	}
	return line
}

// line310 is _PyCode_CheckLineNumber of 3.10: pairs of (byte length of
// a range, signed line increment, -128 for a range without a line).
func line310(table []byte, first, at int) int {
	line, end := first, 0
	for i := 0; i+1 < len(table); i += 2 {
		end += int(table[i])
		cur := -1
		if d := int8(table[i+1]); d != -128 {
			line += int(d)
			cur = line
		}
		if end > at {
			return cur
		}
	}
	return -1
}

// lineLocations reads the location table of 3.11 and later
// (Objects/locations.md): entries of a first byte with its top bit set,
// holding a code (4 bits) and a length in code units less one (3 bits),
// then the bytes of that code.
func lineLocations(table []byte, first, at int) int {
	line, addr := first, 0
	for i := 0; i < len(table); {
		b := table[i]
		if b&0x80 == 0 {
			return -1 // not at an entry: damaged
		}
		code := int(b>>3) & 15
		end := addr + int(b&7) + 1
		delta := 0
		switch {
		case code == 15: // no location
		case code == 14 || code == 13: // long form, no columns
			delta = signedVarint(table[i+1:])
		case code >= 10: // one line, line delta code-10
			delta = code - 10
		}
		line += delta
		if end > at {
			if code == 15 {
				return -1
			}
			return line
		}
		addr = end
		for i++; i < len(table) && table[i]&0x80 == 0; i++ {
		}
	}
	return -1
}

// signedVarint reads the location table's signed varint: 6 bits a byte,
// the 7th saying another follows, the lowest bit of the result the sign.
func signedVarint(p []byte) int {
	var v uint32
	shift := 0
	for _, b := range p {
		v |= uint32(b&63) << shift
		if b&64 == 0 || shift >= maxVarintShift {
			break
		}
		shift += 6
	}
	if v&1 != 0 {
		return -int(v >> 1)
	}
	return int(v >> 1)
}
