package python

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/cpuwhy/cpuwhy/internal/stack/python/ebpf"
	"github.com/cpuwhy/cpuwhy/internal/unwind"
)

// Caps on what is read of the target: its memory is hostile input.
const (
	maxName      = 256     // characters of a function's name kept
	maxFilename  = 1024    // characters of a file name kept
	maxLineTable = 1 << 16 // bytes of a code object's line table read
	maxThreads   = 4096    // thread states walked
	maxFrames    = 128     // Python frames of one thread read (a sample's; stack.MaxFrames)
	// maxStr is the longest name or file name believed: longer, the
	// object is not one (a name is cut at maxName when shorter).
	maxStr = 1 << 20
)

// errBad is a structure of the target that is not what the layout says:
// a wrong type, an impossible length. Errors of reading the memory (the
// process exited, an unmapped address) are the Memory's.
var errBad = errors.New("not a valid interpreter structure")

// objects are the types the reader checks objects against, by the
// address of their type object in the target.
type objects struct {
	code, str, bytes uint64
}

// reader reads CPython's structures of one layout from a target's
// memory, checking what it can: the type of each object, the length of
// each string and table.
type reader struct {
	mem   unwind.Memory
	l     Layout
	types objects
	buf   []byte
	raw   []ebpf.Frame // the last chain read
}

// read reads n bytes at addr into the reader's buffer, valid until the
// next read.
func (r *reader) read(addr uint64, n int) ([]byte, error) {
	if addr == 0 {
		return nil, fmt.Errorf("%w: null pointer", errBad)
	}
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	b := r.buf[:n]
	if _, err := r.mem.ReadAt(b, addr); err != nil {
		return nil, err
	}
	return b, nil
}

// ptr is the pointer at addr.
func (r *reader) ptr(addr uint64) (uint64, error) {
	b, err := r.read(addr, 8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

// u64 is the 8 bytes at off of b, 0 past its end.
func u64(b []byte, off int) uint64 {
	if off < 0 || off+8 > len(b) {
		return 0
	}
	return binary.LittleEndian.Uint64(b[off:])
}

// u32 is the 4 bytes at off of b, 0 past its end.
func u32(b []byte, off int) uint32 {
	if off < 0 || off+4 > len(b) {
		return 0
	}
	return binary.LittleEndian.Uint32(b[off:])
}

// typed checks that the object at addr is of type want.
func (r *reader) typed(addr, want uint64, what string) error {
	t, err := r.ptr(addr + uint64(r.l.ObjectType))
	if err != nil {
		return fmt.Errorf("reading the type of %s at %#x: %w", what, addr, err)
	}
	if t != want {
		return fmt.Errorf("%w: %s at %#x has type %#x, not %#x", errBad, what, addr, t, want)
	}
	return nil
}

// str reads the str object at addr, at most max characters of it.
func (r *reader) str(addr uint64, max int) (string, error) {
	if err := r.typed(addr, r.types.str, "str"); err != nil {
		return "", err
	}
	h, err := r.read(addr, r.l.StrCompactData)
	if err != nil {
		return "", fmt.Errorf("reading str at %#x: %w", addr, err)
	}
	return parseStr(h, r.l, func(off, n int) ([]byte, error) { return r.read(addr+uint64(off), n) }, max)
}

// parseStr reads a compact str object whose header is h; data reads n
// bytes at offset off of the object. Strings longer than max characters
// are cut, with "…". A NUL, which no name of a function or file holds,
// says the object is not one.
func parseStr(h []byte, l Layout, data func(off, n int) ([]byte, error), max int) (string, error) {
	length := int64(u64(h, l.StrLength))
	state := u32(h, l.StrState)
	kind, compact, ascii := int(state>>2)&7, state>>5&1 == 1, state>>6&1 == 1
	if length < 0 || length > maxStr || !compact || (kind != 1 && kind != 2 && kind != 4) || (ascii && kind != 1) {
		return "", fmt.Errorf("%w: str of length %d, kind %d, compact %v", errBad, length, kind, compact)
	}
	n, cut := int(min(length, int64(max))), length > int64(max)
	off := l.StrCompactData
	if ascii {
		off = l.StrASCIIData
	}
	b, err := data(off, n*kind)
	if err != nil {
		return "", fmt.Errorf("reading the characters of a str: %w", err)
	}
	var sb strings.Builder
	for i := 0; i < n; i++ {
		var c rune
		switch kind {
		case 1:
			c = rune(b[i])
		case 2:
			c = rune(binary.LittleEndian.Uint16(b[2*i:]))
		default:
			c = rune(binary.LittleEndian.Uint32(b[4*i:]))
		}
		if ascii && c >= 0x80 || !utf8.ValidRune(c) || c == 0 {
			return "", fmt.Errorf("%w: str with character %#x", errBad, c)
		}
		sb.WriteRune(c)
	}
	if cut {
		sb.WriteString("…")
	}
	return sb.String(), nil
}

// bytes reads the bytes object at addr, which must hold at most max.
func (r *reader) bytes(addr uint64, max int) ([]byte, error) {
	if err := r.typed(addr, r.types.bytes, "bytes"); err != nil {
		return nil, err
	}
	size, err := r.ptr(addr + uint64(r.l.BytesSize))
	if err != nil {
		return nil, fmt.Errorf("reading the size of bytes at %#x: %w", addr, err)
	}
	if size > uint64(max) {
		return nil, fmt.Errorf("%w: bytes at %#x of %d bytes (at most %d read)", errBad, addr, size, max)
	}
	b, err := r.read(addr+uint64(r.l.BytesData), int(size))
	if err != nil {
		return nil, fmt.Errorf("reading bytes at %#x: %w", addr, err)
	}
	return append([]byte(nil), b...), nil
}

// code is what is kept of a code object.
type code struct {
	name, file string
	first      int
	table      []byte
}

// codeKey is what identifies a code object for the cache: its address,
// and fields read at each use, so that a code object freed and another
// allocated at its address are not taken for each other.
type codeKey struct {
	addr, name, file, table uint64
	first                   int32
}

// codeHead reads the fields of the code object at addr that identify
// it, in one read with its type, which must be PyCode_Type.
func (r *reader) codeHead(addr uint64) (codeKey, error) {
	l := r.l
	name := l.CodeName
	if l.CodeQualname >= 0 {
		name = l.CodeQualname
	}
	end := max(l.ObjectType, name, l.CodeFilename, l.CodeLineTable, l.CodeFirstLine) + 8
	b, err := r.read(addr, end)
	if err != nil {
		return codeKey{}, fmt.Errorf("reading code object at %#x: %w", addr, err)
	}
	if t := u64(b, l.ObjectType); t != r.types.code {
		return codeKey{}, fmt.Errorf("%w: code object at %#x has type %#x, not %#x", errBad, addr, t, r.types.code)
	}
	return codeKey{addr: addr, name: u64(b, name), file: u64(b, l.CodeFilename), table: u64(b, l.CodeLineTable), first: int32(u32(b, l.CodeFirstLine))}, nil
}

// code reads what codeHead identified.
func (r *reader) code(k codeKey) (*code, error) {
	name, err := r.str(k.name, maxName)
	if err != nil {
		return nil, fmt.Errorf("reading the name of code object %#x: %w", k.addr, err)
	}
	file, err := r.str(k.file, maxFilename)
	if err != nil {
		return nil, fmt.Errorf("reading the file name of code object %#x: %w", k.addr, err)
	}
	table, err := r.bytes(k.table, maxLineTable)
	if err != nil {
		return nil, fmt.Errorf("reading the line table of code object %#x: %w", k.addr, err)
	}
	if k.first < 0 {
		return nil, fmt.Errorf("%w: code object %#x begins at line %d", errBad, k.addr, k.first)
	}
	return &code{name: name, file: file, first: int(k.first), table: table}, nil
}
