package symbol

import (
	"bytes"
	"debug/dwarf"
	"debug/elf"
	"debug/gosym"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"

	"github.com/ianlancetaylor/demangle"
	"github.com/ulikunitz/xz"

	"github.com/cpuwhy/cpuwhy/internal/objfile"
)

// Caps on what an object may make us hold: the input may be hostile, and
// real objects stay far below them.
const (
	// MaxMiniDebugInfo caps the decompressed .gnu_debugdata.
	MaxMiniDebugInfo = 256 << 20
	// maxSymbols caps the symbols kept per object (a big C++ binary has
	// a few million).
	maxSymbols = 16 << 20
	// maxUnits caps the DWARF compilation units indexed per object.
	maxUnits = 1 << 20
)

// ErrNoSymbols matches errors saying an object has nothing that names its
// code.
var ErrNoSymbols = errors.New("no symbols")

type sym struct {
	addr, size uint64
	name       string
	// end bounds a symbol without a size (size 0) to its section: such a
	// symbol names the addresses up to the next symbol, but not past its
	// section's end. Else glibc's crt _init, in .init, would name every
	// PLT stub of .plt after it. 0: no bound known.
	end uint64
}

// table is what names addresses of one object, as linked (before any
// load bias).
type table struct {
	obj       *objfile.File // headers only: closed once the table is built
	syms      []sym         // sorted by addr, one per address
	go_       *gosym.Table  // Go's pclntab, for Go binaries
	dwarf     *dwarf.Data
	units     []unit // sorted by lo
	readers   map[dwarf.Offset]*dwarf.LineReader
	sources   []string // what the names come from, for messages
	errs      []error  // sources that were there but unreadable
	debuglink string
}

type unit struct {
	lo, hi uint64
	entry  *dwarf.Entry
}

// debugFinder finds a separate debug file for an object: by build-id or
// by debuglink, in the target's root, on the host and in debug dirs.
type debugFinder func(obj *objfile.File, debuglink string) *objfile.File

// loadTable reads every source of names obj has: .symtab, .dynsym,
// .gnu_debugdata, .gopclntab, DWARF lines, and a separate debug file when
// find gives one.
func loadTable(obj *objfile.File, find debugFinder) *table {
	t := &table{obj: obj}
	t.addELFSymbols(obj, "")
	if data, err := obj.Section(".gnu_debugdata"); err != nil {
		t.errs = append(t.errs, err)
	} else if data != nil {
		mini, err := parseMiniDebugInfo(data, MaxMiniDebugInfo)
		if err != nil {
			t.errs = append(t.errs, fmt.Errorf("MiniDebugInfo: %w", err))
		} else {
			t.addELFSymbols(mini, "MiniDebugInfo ")
		}
	}
	if g, err := loadGo(obj); err != nil {
		t.errs = append(t.errs, err)
	} else if g != nil {
		t.go_ = g
		t.sources = append(t.sources, ".gopclntab")
	}
	link, _, err := obj.Debuglink()
	if err != nil {
		t.errs = append(t.errs, err)
	}
	t.debuglink = link
	hasSymtab := obj.ELF.Section(".symtab") != nil
	hasDWARF := obj.ELF.Section(".debug_info") != nil || obj.ELF.Section(".zdebug_info") != nil
	dwarfFrom := obj
	if find != nil && (!hasSymtab || !hasDWARF) && t.go_ == nil {
		if dbg := find(obj, link); dbg != nil {
			defer dbg.Close()
			t.sources = append(t.sources, "debug file "+dbg.Path)
			t.addELFSymbols(dbg, "debug file "+dbg.Path+" ")
			if dbg.ELF.Section(".debug_info") != nil {
				dwarfFrom = dbg
			}
		}
	}
	t.loadDWARF(dwarfFrom)
	t.finish()
	return t
}

// addELFSymbols adds the function symbols of f's .symtab and .dynsym.
func (t *table) addELFSymbols(f *objfile.File, what string) {
	for _, s := range []struct {
		name string
		read func() ([]elf.Symbol, error)
	}{{".symtab", f.ELF.Symbols}, {".dynsym", f.ELF.DynamicSymbols}} {
		sec := f.ELF.Section(s.name)
		if sec == nil {
			continue
		}
		if sec.Size > objfile.MaxSection {
			t.errs = append(t.errs, fmt.Errorf("%s%s: %w", what, s.name, objfile.ErrTooLarge))
			continue
		}
		syms, err := safeSymbols(s.read)
		if err != nil {
			if !errors.Is(err, elf.ErrNoSymbols) {
				t.errs = append(t.errs, fmt.Errorf("%s%s: %w", what, s.name, err))
			}
			continue
		}
		n := 0
		for _, es := range syms {
			typ := elf.ST_TYPE(es.Info)
			if (typ != elf.STT_FUNC && typ != elf.STT_GNU_IFUNC) || es.Section == elf.SHN_UNDEF || es.Value == 0 || es.Name == "" {
				continue
			}
			if len(t.syms) >= maxSymbols {
				t.errs = append(t.errs, fmt.Errorf("%s%s: more than %d symbols, rest ignored", what, s.name, maxSymbols))
				break
			}
			var end uint64
			if es.Size == 0 && int(es.Section) < len(f.ELF.Sections) {
				if sec := f.ELF.Sections[es.Section]; es.Value >= sec.Addr && es.Value-sec.Addr < sec.Size {
					end = sec.Addr + sec.Size
				}
			}
			t.syms = append(t.syms, sym{addr: es.Value, size: es.Size, name: es.Name, end: end})
			n++
		}
		if n > 0 {
			t.sources = append(t.sources, what+s.name)
		}
	}
}

func safeSymbols(read func() ([]elf.Symbol, error)) (syms []elf.Symbol, err error) {
	defer func() {
		if p := recover(); p != nil {
			syms, err = nil, fmt.Errorf("%w: symbols: panic: %v", objfile.ErrMalformed, p)
		}
	}()
	return read()
}

// parseMiniDebugInfo decompresses .gnu_debugdata (an xz stream holding an
// ELF object with a .symtab, as Fedora ships) and parses it, refusing more
// than limit decompressed bytes.
func parseMiniDebugInfo(data []byte, limit int) (*objfile.File, error) {
	r, err := xz.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: xz: %w", objfile.ErrMalformed, err)
	}
	elfData, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("%w: xz: %w", objfile.ErrMalformed, err)
	}
	if len(elfData) > limit {
		return nil, fmt.Errorf("decompressed: %w (more than %d bytes)", objfile.ErrTooLarge, limit)
	}
	return objfile.Parse(bytes.NewReader(elfData), int64(len(elfData)))
}

// loadGo reads a Go binary's pclntab, which `go build -ldflags=-s -w`
// keeps: the runtime needs it for tracebacks.
func loadGo(obj *objfile.File) (*gosym.Table, error) {
	data, err := obj.Section(".gopclntab")
	if err != nil || data == nil {
		return nil, err
	}
	var textStart uint64
	if text := obj.ELF.Section(".text"); text != nil {
		textStart = text.Addr
	}
	tab, err := parsePclntab(data, textStart)
	if err != nil {
		return nil, fmt.Errorf(".gopclntab: %w", err)
	}
	return tab, nil
}

// parsePclntab parses a Go pclntab; debug/gosym trusts its input, so its
// panics become errors.
func parsePclntab(data []byte, textStart uint64) (tab *gosym.Table, err error) {
	defer func() {
		if p := recover(); p != nil {
			tab, err = nil, fmt.Errorf("%w: pclntab: panic: %v", objfile.ErrMalformed, p)
		}
	}()
	if err := checkPclntabHeader(data); err != nil {
		return nil, err
	}
	tab, err = gosym.NewTable(nil, gosym.NewLineTable(data, textStart))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", objfile.ErrMalformed, err)
	}
	if len(tab.Funcs) == 0 {
		return nil, fmt.Errorf("%w: pclntab has no functions", objfile.ErrMalformed)
	}
	return tab, nil
}

// checkPclntabHeader refuses a pclntab whose function count could not fit
// in it: debug/gosym allocates a Func per function from that count before
// reading any, so a forged header would cost gigabytes. Every known
// layout (Go 1.2 to today) keeps the count, pointer-sized, at offset 8,
// and each function takes at least 8 bytes of the function table.
func checkPclntabHeader(data []byte) error {
	if len(data) < 16 {
		return fmt.Errorf("%w: pclntab of %d bytes", objfile.ErrMalformed, len(data))
	}
	var n uint64
	bigEndian := data[3] != 0xff // the magic is 0xfffffffX in the file's byte order
	switch ptrSize := data[7]; ptrSize {
	case 4:
		n = uint64(binary.LittleEndian.Uint32(data[8:]))
		if bigEndian {
			n = uint64(binary.BigEndian.Uint32(data[8:]))
		}
	case 8:
		n = binary.LittleEndian.Uint64(data[8:])
		if data[0] == 0 {
			n = binary.BigEndian.Uint64(data[8:])
		}
	default:
		return fmt.Errorf("%w: pclntab pointer size %d", objfile.ErrMalformed, ptrSize)
	}
	if n > uint64(len(data))/8 {
		return fmt.Errorf("%w: pclntab claims %d functions in %d bytes", objfile.ErrMalformed, n, len(data))
	}
	return nil
}

// loadDWARF indexes the compilation units of f's DWARF by address range,
// for line lookups.
func (t *table) loadDWARF(f *objfile.File) {
	for _, s := range f.ELF.Sections {
		if (strings.HasPrefix(s.Name, ".debug_") || strings.HasPrefix(s.Name, ".zdebug_")) && s.Size > objfile.MaxSection {
			t.errs = append(t.errs, fmt.Errorf("DWARF %s: %w", s.Name, objfile.ErrTooLarge))
			return
		}
	}
	if f.ELF.Section(".debug_info") == nil && f.ELF.Section(".zdebug_info") == nil {
		return
	}
	d, units, err := readDWARF(f.ELF)
	if err != nil {
		t.errs = append(t.errs, fmt.Errorf("DWARF: %w", err))
		return
	}
	t.dwarf, t.units = d, units
	t.readers = map[dwarf.Offset]*dwarf.LineReader{}
	if len(units) > 0 {
		t.sources = append(t.sources, "DWARF lines")
	}
}

func readDWARF(e *elf.File) (d *dwarf.Data, units []unit, err error) {
	defer func() {
		if p := recover(); p != nil {
			d, units, err = nil, nil, fmt.Errorf("%w: panic: %v", objfile.ErrMalformed, p)
		}
	}()
	d, err = e.DWARF()
	if err != nil {
		return nil, nil, err
	}
	r := d.Reader()
	for {
		ent, err := r.Next()
		if err != nil {
			return nil, nil, err
		}
		if ent == nil {
			break
		}
		if ent.Tag != dwarf.TagCompileUnit {
			r.SkipChildren()
			continue
		}
		r.SkipChildren()
		ranges, err := d.Ranges(ent)
		if err != nil {
			continue
		}
		for _, rg := range ranges {
			if len(units) >= maxUnits {
				return nil, nil, fmt.Errorf("more than %d unit ranges", maxUnits)
			}
			if rg[0] < rg[1] {
				units = append(units, unit{lo: rg[0], hi: rg[1], entry: ent})
			}
		}
	}
	sort.Slice(units, func(i, j int) bool { return units[i].lo < units[j].lo })
	return d, units, nil
}

// finish sorts the symbols and keeps one per address, preferring one with
// a size.
func (t *table) finish() {
	sort.SliceStable(t.syms, func(i, j int) bool {
		if t.syms[i].addr != t.syms[j].addr {
			return t.syms[i].addr < t.syms[j].addr
		}
		return t.syms[i].size > t.syms[j].size
	})
	out := t.syms[:0]
	for i, s := range t.syms {
		if i > 0 && s.addr == out[len(out)-1].addr {
			continue
		}
		out = append(out, s)
	}
	t.syms = out
}

// empty reports whether nothing in the table names code.
func (t *table) empty() bool { return len(t.syms) == 0 && t.go_ == nil }

// lookup names the address v (as linked).
func (t *table) lookup(v uint64) (fn, file string, line int) {
	if t.go_ != nil {
		if f, l, gf := safeGoPCToLine(t.go_, v); gf != nil {
			return gf.Name, f, l
		}
	}
	i := sort.Search(len(t.syms), func(i int) bool { return t.syms[i].addr > v }) - 1
	if i >= 0 {
		s := t.syms[i]
		sized := s.size > 0 && v-s.addr < s.size
		unsized := s.size == 0 && (s.end == 0 || v < s.end)
		if sized || unsized {
			fn = Demangle(s.name)
		}
	}
	file, line = t.lineOf(v)
	return fn, file, line
}

func safeGoPCToLine(tab *gosym.Table, pc uint64) (file string, line int, fn *gosym.Func) {
	defer func() {
		if recover() != nil {
			file, line, fn = "", 0, nil
		}
	}()
	return tab.PCToLine(pc)
}

// lineOf returns the source position of v from DWARF line tables.
func (t *table) lineOf(v uint64) (file string, line int) {
	if t.dwarf == nil {
		return "", 0
	}
	defer func() {
		if recover() != nil {
			file, line = "", 0
		}
	}()
	i := sort.Search(len(t.units), func(i int) bool { return t.units[i].lo > v }) - 1
	if i < 0 || v >= t.units[i].hi {
		return "", 0
	}
	u := t.units[i]
	lr, ok := t.readers[u.entry.Offset]
	if !ok {
		var err error
		lr, err = t.dwarf.LineReader(u.entry)
		if err != nil || lr == nil {
			t.readers[u.entry.Offset] = nil
			return "", 0
		}
		t.readers[u.entry.Offset] = lr
	}
	if lr == nil {
		return "", 0
	}
	var le dwarf.LineEntry
	if err := lr.SeekPC(v, &le); err != nil || le.File == nil {
		return "", 0
	}
	return le.File.Name, le.Line
}

var rustHash = regexp.MustCompile(`::h[0-9a-f]{16}$`)

// Demangle turns a C++ or Rust symbol into its function name, without
// parameters: "_ZN3vpn7Session4pumpEv" is "vpn::Session::pump". Other
// names come back as they are.
func Demangle(name string) string {
	if !strings.HasPrefix(name, "_Z") && !strings.HasPrefix(name, "_R") && !strings.HasPrefix(name, "__Z") {
		return name
	}
	d := safeDemangle(name)
	return rustHash.ReplaceAllString(d, "")
}

func safeDemangle(name string) (out string) {
	defer func() {
		if recover() != nil {
			out = name
		}
	}()
	return demangle.Filter(name, demangle.NoParams, demangle.NoTemplateParams)
}
