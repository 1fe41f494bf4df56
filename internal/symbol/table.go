package symbol

import (
	"bytes"
	"cmp"
	"debug/dwarf"
	"debug/elf"
	"debug/gosym"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
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
	// maxUnits caps the DWARF compilation units walked per object.
	maxUnits = 1 << 20
)

// ErrNoSymbols matches errors saying an object has nothing that names its
// code.
var ErrNoSymbols = errors.New("no symbols")

// table is what names addresses of one object, as linked (before any
// load bias). Symbols are read when the table is made; DWARF lines on
// the first address asked for (many callers only want names, and the
// line tables are the biggest part).
type table struct {
	obj       *objfile.File // headers; open until close when lines come from it
	syms      []sym         // sorted by addr, one per address
	strtabs   [][]byte      // the string tables syms' names are in
	go_       *gosym.Table  // Go's pclntab, for Go binaries
	sources   []string      // what the names come from, for messages
	errs      []error       // sources that were there but unreadable
	debuglink string

	// linesFrom is the object holding the DWARF line tables (obj or its
	// debug file), kept open until they are read and then for the
	// strings and directories they may still need; nil when none has
	// DWARF.
	linesFrom *objfile.File
	lines     *lineTable
	linesDone bool
	open      []*objfile.File // what close closes
	closed    bool
}

// debugFinder finds a separate debug file for an object: by build-id or
// by debuglink, in the target's root, on the host and in debug dirs.
type debugFinder func(obj *objfile.File, debuglink string) *objfile.File

// loadTable reads every source of names obj has: .symtab, .dynsym,
// .gnu_debugdata, .gopclntab, and a separate debug file when find gives
// one. DWARF lines are read later, by lineOf. The table takes obj: close
// releases it.
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
	if g, err := t.loadGo(obj); err != nil {
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
	if hasDWARF(obj) {
		t.linesFrom = obj
	}
	if find != nil && (!hasSymtab || t.linesFrom == nil) && t.go_ == nil {
		if dbg := find(obj, link); dbg != nil {
			t.sources = append(t.sources, "debug file "+dbg.Path)
			t.addELFSymbols(dbg, "debug file "+dbg.Path+" ")
			if t.linesFrom == nil && hasDWARF(dbg) {
				t.linesFrom = dbg
				t.open = append(t.open, dbg)
			} else {
				dbg.Close()
			}
		}
	}
	if t.linesFrom == obj {
		t.open = append(t.open, obj)
	} else {
		obj.Close()
	}
	t.finish()
	return t
}

func hasDWARF(f *objfile.File) bool {
	return f.ELF.Section(".debug_info") != nil || f.ELF.Section(".zdebug_info") != nil
}

// close releases the files the table kept open and its line index, the
// biggest part of it: a closed table names no lines (the Symbolizer
// loads the object again).
func (t *table) close() {
	for _, f := range t.open {
		f.Close()
	}
	t.open, t.closed, t.linesFrom = nil, true, nil
	t.lines, t.linesDone = nil, true
}

// addELFSymbols adds the function symbols of f's .symtab and .dynsym.
func (t *table) addELFSymbols(f *objfile.File, what string) {
	for _, name := range []string{".symtab", ".dynsym"} {
		sec := f.ELF.Section(name)
		if sec == nil {
			continue
		}
		if sec.Size > objfile.MaxSection {
			t.errs = append(t.errs, fmt.Errorf("%s%s: %w", what, name, objfile.ErrTooLarge))
			continue
		}
		data, strtab, err := symbolSection(f, sec)
		if err != nil {
			t.errs = append(t.errs, fmt.Errorf("%s%s: %w", what, name, err))
			continue
		}
		if len(data) == 0 {
			continue
		}
		n := len(t.syms)
		var truncated bool
		t.syms, truncated, err = appendFuncSymbols(t.syms, data, strtab, f.ELF.Class, f.ELF.ByteOrder, uint8(len(t.strtabs)), maxSymbols, f.ELF.Sections)
		if err != nil {
			t.errs = append(t.errs, fmt.Errorf("%s%s: %w", what, name, err))
			continue
		}
		if truncated {
			t.errs = append(t.errs, fmt.Errorf("%s%s: more than %d symbols, rest ignored", what, name, maxSymbols))
		}
		if len(t.syms) > n {
			t.strtabs = append(t.strtabs, strtab)
			t.sources = append(t.sources, what+name)
		}
	}
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
func (t *table) loadGo(obj *objfile.File) (*gosym.Table, error) {
	data, err := obj.Section(".gopclntab")
	if err != nil || data == nil {
		return nil, err
	}
	tab, err := parsePclntab(data, t.goTextStart(obj, data))
	if err != nil {
		return nil, fmt.Errorf(".gopclntab: %w", err)
	}
	return tab, nil
}

// goTextStart returns where the Go code of obj starts, which pclntab
// offsets count from: runtime.text. It is where .text starts only when
// Go linked the binary itself; with external linking (cgo) the C
// toolchain's start-up code comes first, and every address would be
// off. From the symbol table when there is one; else from the pclntab
// header (Go 1.18 and 1.19 fill it in the file, later versions leave 0);
// else from runtime.firstmoduledata, found by its pointer to the pclntab;
// else .text.
func (t *table) goTextStart(obj *objfile.File, pcln []byte) uint64 {
	var start, end uint64
	if text := obj.ELF.Section(".text"); text != nil {
		start, end = text.Addr, text.Addr+text.Size
	}
	for _, s := range t.syms {
		if s.addr >= start && s.addr < end && t.name(s) == "runtime.text" {
			return s.addr
		}
	}
	if len(pcln) >= 8 && (pcln[7] == 4 || pcln[7] == 8) && pcln[6] <= 4 {
		ptr := int(pcln[7])
		if off := 8 + 2*ptr; len(pcln) >= off+ptr {
			var v uint64
			order := obj.ELF.ByteOrder
			if ptr == 8 {
				v = order.Uint64(pcln[off:])
			} else {
				v = uint64(order.Uint32(pcln[off:]))
			}
			// Only the Go 1.18 and 1.20 layouts have the field.
			if magic := order.Uint32(pcln); (magic == 0xfffffff0 || magic == 0xfffffff1) && v > start && v < end {
				return v
			}
		}
	}
	if pc := obj.ELF.Section(".gopclntab"); pc != nil {
		if v := moduledataText(obj, pc.Addr, start, end); v != 0 {
			return v
		}
	}
	return start
}

// moduledataText returns the text field of runtime.firstmoduledata, 0
// when it is not found: a pointer-aligned run of words whose first is the
// pclntab's address (moduledata.pcHeader), with text (word 22) and minpc
// (word 20) in [start, end), in .go.module (where Go 1.26 puts it when
// linking externally), .noptrdata or .data. The layout has held from Go
// 1.16 to 1.26. In a PIE the pointers are relocated at load and read 0 in
// the file: not found.
func moduledataText(obj *objfile.File, pclntab, start, end uint64) uint64 {
	for _, name := range []string{".go.module", ".noptrdata", ".data"} {
		if v := findModuledata(obj, name, pclntab, start, end); v != 0 {
			return v
		}
	}
	return 0
}

func findModuledata(obj *objfile.File, section string, pclntab, start, end uint64) uint64 {
	s := obj.ELF.Section(section)
	if s == nil || s.Type == elf.SHT_NOBITS {
		return 0
	}
	data, err := objfile.SectionData(s)
	if err != nil {
		return 0
	}
	ptr := 8
	if obj.ELF.Class == elf.ELFCLASS32 {
		ptr = 4
	}
	word := func(off int) uint64 {
		if ptr == 8 {
			return obj.ELF.ByteOrder.Uint64(data[off:])
		}
		return uint64(obj.ELF.ByteOrder.Uint32(data[off:]))
	}
	for off := 0; off+23*ptr <= len(data); off += ptr {
		if word(off) != pclntab {
			continue
		}
		text, minpc := word(off+22*ptr), word(off+20*ptr)
		if text >= start && text < end && minpc >= text && minpc < end {
			return text
		}
	}
	return 0
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

// finish sorts the symbols and keeps one per address, preferring one with
// a size, then the first read.
func (t *table) finish() {
	slices.SortFunc(t.syms, func(a, b sym) int {
		if c := cmp.Compare(a.addr, b.addr); c != 0 {
			return c
		}
		if c := cmp.Compare(b.size, a.size); c != 0 {
			return c
		}
		return cmp.Compare(a.ord&(1<<24-1), b.ord&(1<<24-1))
	})
	t.syms = slices.CompactFunc(t.syms, func(a, b sym) bool { return a.addr == b.addr })
	t.syms = slices.Clip(t.syms)
}

// name returns the name of s.
func (t *table) name(s sym) string {
	return cstring(t.strtabs[s.tab()][s.name:])
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
			fn = Demangle(t.name(s))
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

// lineOf returns the source position of v from the DWARF line tables,
// reading them on first use.
func (t *table) lineOf(v uint64) (file string, line int) {
	if !t.linesDone {
		t.linesDone = true
		t.loadLines()
	}
	if t.lines == nil {
		return "", 0
	}
	file, line, err := t.lines.lookup(v)
	if err != nil {
		t.errs = append(t.errs, fmt.Errorf("DWARF lines: %w", err))
	}
	return file, line
}

// loadLines indexes the line programs of linesFrom. The directory and
// file names they hold are read when a row asks for them.
func (t *table) loadLines() {
	f := t.linesFrom
	if f == nil {
		return
	}
	data, err := debugSection(f, "line")
	if err != nil {
		t.errs = append(t.errs, fmt.Errorf("DWARF: %w", err))
		return
	}
	if data == nil {
		return
	}
	addrSize := 8
	if f.ELF.Class == elf.ELFCLASS32 {
		addrSize = 4
	}
	lt, err := newLineTable(data, addrSize, f.ELF.ByteOrder == binary.BigEndian)
	if err != nil {
		t.errs = append(t.errs, fmt.Errorf("DWARF lines: %w", err))
	}
	strs := map[string][]byte{}
	lt.strings = func(name string) ([]byte, error) {
		if data, ok := strs[name]; ok {
			return data, nil
		}
		if t.closed {
			return nil, errClosed
		}
		data, err := debugSection(f, strings.TrimPrefix(name, ".debug_"))
		if err != nil {
			return nil, fmt.Errorf("DWARF: %w", err)
		}
		strs[name] = data
		return data, nil
	}
	var dirs map[uint64]string
	lt.compDir = func(off uint64) (string, error) {
		if dirs == nil {
			if t.closed {
				return "", errClosed
			}
			var err error
			if dirs, err = compDirs(f); err != nil {
				t.errs = append(t.errs, fmt.Errorf("DWARF compilation directories: %w", err))
			}
		}
		return dirs[off], nil
	}
	t.lines = lt
	if len(lt.seqs) > 0 {
		t.sources = append(t.sources, "DWARF lines")
	}
}

var errClosed = errors.New("object closed")

// debugSection returns the contents of .debug_<name> (or the old
// .zdebug_<name>), decompressed, nil when there is none.
func debugSection(f *objfile.File, name string) ([]byte, error) {
	if s := f.ELF.Section(".debug_" + name); s != nil {
		return objfile.SectionData(s)
	}
	s := f.ELF.Section(".zdebug_" + name)
	if s == nil || s.Type == elf.SHT_NOBITS {
		return nil, nil
	}
	// The size of a .zdebug section is in its own header: check it
	// before debug/elf inflates that much.
	var hdr [12]byte
	if _, err := s.ReadAt(hdr[:], 0); err != nil || string(hdr[:4]) != "ZLIB" {
		return objfile.SectionData(s)
	}
	if size := binary.BigEndian.Uint64(hdr[4:]); size > objfile.MaxSection {
		return nil, fmt.Errorf("section %s: %d bytes: %w (max %d)", s.Name, size, objfile.ErrTooLarge, objfile.MaxSection)
	}
	return objfile.SectionData(s)
}

// compDirs maps the line program offset of each compilation unit of f to
// its compilation directory, through debug/dwarf: DWARF 2-4 programs name
// files relative to it. Only the sections a unit's own entry needs are
// read (f.ELF.DWARF() would inflate them all, location lists included).
// debug/dwarf trusts its input, so its panics become errors.
func compDirs(f *objfile.File) (dirs map[uint64]string, err error) {
	dirs = map[uint64]string{}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: panic: %v", objfile.ErrMalformed, p)
		}
	}()
	sec := map[string][]byte{}
	for _, name := range []string{"abbrev", "info", "str", "line_str", "str_offsets", "addr"} {
		data, err := debugSection(f, name)
		if err != nil {
			return dirs, err
		}
		sec[name] = data
	}
	d, err := dwarf.New(sec["abbrev"], nil, nil, sec["info"], nil, nil, nil, sec["str"])
	if err != nil {
		return dirs, err
	}
	for _, name := range []string{"line_str", "str_offsets", "addr"} {
		if sec[name] != nil {
			d.AddSection(".debug_"+name, sec[name])
		}
	}
	r := d.Reader()
	for n := 0; n < maxUnits; n++ {
		ent, err := r.Next()
		if err != nil || ent == nil {
			return dirs, err
		}
		r.SkipChildren()
		off, ok1 := ent.Val(dwarf.AttrStmtList).(int64)
		dir, ok2 := ent.Val(dwarf.AttrCompDir).(string)
		if ok1 && ok2 && off >= 0 {
			dirs[uint64(off)] = dir
		}
	}
	return dirs, fmt.Errorf("more than %d compilation units", maxUnits)
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
