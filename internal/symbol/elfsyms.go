package symbol

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"

	"github.com/cpuwhy/cpuwhy/internal/objfile"
)

// sym is one function symbol: its name is an offset in one of the
// table's string tables, read only when the symbol names an address. A
// big binary has hundreds of thousands of symbols; debug/elf's Symbols
// makes an 80-byte elf.Symbol and a string for every one of them,
// functions or not, which was most of the cost of loading a table.
type sym struct {
	addr, size uint64
	name       uint32 // offset in strtabs[s.tab()]
	// ord is the string table number (top 8 bits) and the order the
	// symbol was read in (maxSymbols fits the other 24): of several
	// symbols at one address, the first read is kept.
	ord uint32
	// end bounds a symbol without a size (size 0) to its section: such a
	// symbol names the addresses up to the next symbol, but not past its
	// section's end. Else glibc's crt _init, in .init, would name every
	// PLT stub of .plt after it. 0: no bound known.
	end uint64
}

func (s sym) tab() int { return int(s.ord >> 24) }

// ELF symbol entry sizes.
const (
	sym32Size = 16
	sym64Size = 24
)

// appendFuncSymbols appends to dst the function symbols (STT_FUNC and
// STT_GNU_IFUNC, defined, at a non-zero address, with a name) of the
// symbol table data, whose names are in strtab, stored as string table
// number tab. It keeps what debug/elf's Symbols would give, the null
// first entry skipped, without making it. At most limit symbols are
// appended; truncated says whether some were left out. Every allocation
// is bounded by len(data). sections, when given, bound symbols without a
// size to their section (sym.end).
func appendFuncSymbols(dst []sym, data, strtab []byte, class elf.Class, order binary.ByteOrder, tab uint8, limit int, sections []*elf.Section) (out []sym, truncated bool, err error) {
	size := sym64Size
	if class == elf.ELFCLASS32 {
		size = sym32Size
	}
	if len(data)%size != 0 {
		return dst, false, fmt.Errorf("%w: symbol table of %d bytes is not a multiple of %d", objfile.ErrMalformed, len(data), size)
	}
	for off := size; off+size <= len(data); off += size {
		e := data[off : off+size]
		var name uint32
		var info byte
		var shndx uint16
		var value, sz uint64
		if size == sym64Size {
			name, info, shndx = order.Uint32(e[0:]), e[4], order.Uint16(e[6:])
			value, sz = order.Uint64(e[8:]), order.Uint64(e[16:])
		} else {
			name, value, sz = order.Uint32(e[0:]), uint64(order.Uint32(e[4:])), uint64(order.Uint32(e[8:]))
			info, shndx = e[12], order.Uint16(e[14:])
		}
		typ := elf.ST_TYPE(info)
		if (typ != elf.STT_FUNC && typ != elf.STT_GNU_IFUNC) || elf.SectionIndex(shndx) == elf.SHN_UNDEF || value == 0 {
			continue
		}
		if uint64(name) >= uint64(len(strtab)) || strtab[name] == 0 {
			continue // no name, as debug/elf gives for an offset out of the table
		}
		if len(dst) >= limit {
			return dst, true, nil
		}
		var end uint64
		if sz == 0 && int(shndx) < len(sections) {
			if sec := sections[shndx]; value >= sec.Addr && value-sec.Addr < sec.Size {
				end = sec.Addr + sec.Size
			}
		}
		dst = append(dst, sym{addr: value, size: sz, name: name, ord: uint32(tab)<<24 | uint32(len(dst))&(1<<24-1), end: end})
	}
	return dst, false, nil
}

// cstring returns the NUL-terminated string at the start of b.
func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// symbolSection reads a symbol table section of f and the string table it
// links to.
func symbolSection(f *objfile.File, s *elf.Section) (data, strtab []byte, err error) {
	if s.Type == elf.SHT_NOBITS {
		return nil, nil, nil // as debug files keep the .dynsym they do not carry
	}
	if data, err = objfile.SectionData(s); err != nil || len(data) == 0 {
		return nil, nil, err
	}
	if int(s.Link) <= 0 || int(s.Link) >= len(f.ELF.Sections) {
		return nil, nil, fmt.Errorf("%w: string table index %d of %d sections", objfile.ErrMalformed, s.Link, len(f.ELF.Sections))
	}
	if strtab, err = objfile.SectionData(f.ELF.Sections[s.Link]); err != nil {
		return nil, nil, err
	}
	return data, strtab, nil
}
