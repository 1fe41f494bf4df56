package symbol

import (
	"cmp"
	"errors"
	"fmt"
	"path"
	"slices"
	"sort"

	"github.com/cpuwhy/cpuwhy/internal/objfile"
)

// Line tables are read from .debug_line alone, without .debug_info.
//
// The usual way to a line (debug/dwarf, addr2line) goes through the
// compilation units of .debug_info: find the unit covering the address
// (from .debug_aranges or by walking every unit), read its DIE for
// DW_AT_stmt_list, then decode its line program. .debug_info is most of
// an object's DWARF (three to fifteen times .debug_line), and distributions
// ship it zlib-compressed, so that reading any unit of it means inflating
// all of it: that was most of the cost of naming a libc frame. The line
// programs say which addresses they cover by themselves, so one pass over
// .debug_line indexes them: each sequence (a run of rows from one address
// to its end_sequence) by address, with a checkpoint of the line-number
// machine's state every markEvery rows. A lookup then finds the sequence,
// resumes the machine from the last checkpoint below the address and
// decodes at most markEvery rows. Nothing per row is kept.
//
// The results are those of debug/dwarf's LineReader.SeekPC on the unit's
// program (the tests compare them row by row), with two differences:
// sequences out of address order within one program are found (SeekPC
// gives up on them), and paths are joined the Unix way only. DWARF 2-4
// programs name files relative to the unit's DW_AT_comp_dir, which is in
// .debug_info: it is read, through debug/dwarf and from the few sections
// a unit's entry needs, only when a row naming such a file is returned.

// markEvery is how many rows apart the checkpoints of a sequence are: a
// lookup decodes at most that many rows.
const markEvery = 32

// maxLineSeqs caps the sequences indexed per object (one per function
// with -ffunction-sections; a big binary has a few hundred thousand).
const maxLineSeqs = 1 << 24

// lineTable indexes the line programs of one .debug_line section.
type lineTable struct {
	sec      []byte // .debug_line
	addrSize int    // of the object, for DWARF 2-4 programs
	be       bool   // the object is big-endian
	progs    []lineProg
	seqs     []lineSeq  // sorted by lo
	marks    []lineMark // each sequence's are contiguous, by address
	// strings returns .debug_str or .debug_line_str, read on first use.
	strings func(name string) ([]byte, error)
	special struct { // effect of each special opcode, for the last parameters
		key  [4]int
		ok   bool
		addr [256]uint64
		line [256]int64
	}
	// compDir returns the compilation directory of the unit whose line
	// program is at off, for DWARF 2-4 programs' relative names.
	compDir func(off uint64) (string, error)
}

// lineProg is one line program (one compilation unit's).
type lineProg struct {
	off        uint64 // of its header in the section
	tables     uint64 // start of the directory and file tables
	start, end uint64 // of the opcodes
	version    uint16
	dwarf64    bool
	addrSize   uint8
	minInst    uint8
	maxOps     uint8
	lineBase   int8
	lineRange  uint8
	opBase     uint8
	opLens     []byte     // standard_opcode_lengths, opcodes 1 to opBase-1
	defines    bool       // uses DW_LNE_define_file: files change as it runs
	dirs       []string   // DWARF 2-4: as written, [0] the compilation directory's place
	files      []lineFile // index as in the program
	filesErr   error
	filesDone  bool
	compDir    string // DWARF 2-4, read when a name needs it
	compDirOK  bool
}

// lineFile is a file of a line program's table. A DWARF 2-4 name relative
// to the compilation directory (dir 0, or a relative directory) is joined
// with it only when a row naming it is looked up: the directory is in
// .debug_info, which is read for it alone.
type lineFile struct {
	name string // the full name when final, else as written
	dir  uint64
	rel  bool // relative to the compilation directory
}

type lineSeq struct {
	lo, hi      uint64
	maxHi       uint64 // the highest hi of this and the sequences before it
	prog        uint32
	first, last uint32 // its marks: marks[first:last]
}

// lineMark is the machine's state just after it emitted a row.
type lineMark struct {
	addr    uint64
	off     uint64 // of the next opcode
	line    int64
	file    uint64
	opIndex uint64
}

// lineState is the line-number machine's registers that matter here.
type lineState struct {
	addr, opIndex, file uint64
	line                int64
}

// errLine is what a malformed line program gives.
var errLine = fmt.Errorf("%w: .debug_line", objfile.ErrMalformed)

// newLineTable indexes the line programs of sec. A program it cannot read
// is skipped when its length says where the next one starts; the error
// says what was skipped.
func newLineTable(sec []byte, addrSize int, be bool) (*lineTable, error) {
	t := &lineTable{sec: sec, addrSize: addrSize, be: be}
	var errs []error
	more := 0
	fail := func(err error) {
		if len(errs) < 3 {
			errs = append(errs, err)
		} else {
			more++
		}
	}
	for off := uint64(0); off < uint64(len(sec)); {
		p, next, err := parseLineHeader(sec, off, addrSize, be)
		if err != nil {
			fail(err)
			if next <= off {
				break
			}
			off = next
			continue
		}
		off = next
		if err := t.index(p); err != nil {
			fail(err)
			if errors.Is(err, errTooManySeqs) {
				break
			}
		}
	}
	slices.SortFunc(t.seqs, func(a, b lineSeq) int {
		if c := cmp.Compare(a.lo, b.lo); c != 0 {
			return c
		}
		return cmp.Compare(a.hi, b.hi)
	})
	var maxHi uint64
	for i := range t.seqs {
		maxHi = max(maxHi, t.seqs[i].hi)
		t.seqs[i].maxHi = maxHi
	}
	if more > 0 {
		errs = append(errs, fmt.Errorf("and %d more programs", more))
	}
	return t, errors.Join(errs...)
}

var errTooManySeqs = fmt.Errorf("%w: more than %d line sequences", objfile.ErrTooLarge, maxLineSeqs)

// reader reads DWARF values from b, bounded by end.
type reader struct {
	b   []byte
	off uint64
	end uint64
	bad bool
	be  bool // big-endian
}

func (r *reader) u8() uint8 {
	if r.off >= r.end {
		r.bad = true
		return 0
	}
	v := r.b[r.off]
	r.off++
	return v
}

func (r *reader) fixed(n int) uint64 {
	if r.off > r.end || r.end-r.off < uint64(n) {
		r.bad, r.off = true, r.end
		return 0
	}
	var v uint64
	for i := range n {
		if r.be {
			v = v<<8 | uint64(r.b[r.off+uint64(i)])
		} else {
			v = v<<8 | uint64(r.b[r.off+uint64(n-1-i)])
		}
	}
	r.off += uint64(n)
	return v
}

func (r *reader) uleb() uint64 {
	var v uint64
	var shift uint
	for {
		c := r.u8()
		if r.bad {
			return 0
		}
		if shift < 64 {
			v |= uint64(c&0x7f) << shift
		}
		shift += 7
		if c&0x80 == 0 {
			return v
		}
	}
}

func (r *reader) sleb() int64 {
	var v int64
	var shift uint
	for {
		c := r.u8()
		if r.bad {
			return 0
		}
		if shift < 64 {
			v |= int64(c&0x7f) << shift
		}
		shift += 7
		if c&0x80 == 0 {
			if shift < 64 && c&0x40 != 0 {
				v |= -1 << shift
			}
			return v
		}
	}
}

func (r *reader) cstr() string {
	for i := r.off; i < r.end; i++ {
		if r.b[i] == 0 {
			s := string(r.b[r.off:i])
			r.off = i + 1
			return s
		}
	}
	r.bad, r.off = true, r.end
	return ""
}

// knownOpLens are the operand counts of the standard opcodes a header
// must agree with (debug/dwarf refuses a header that does not;
// DW_LNS_fixed_advance_pc, whose operand is not a LEB128, is not checked).
var knownOpLens = [...]int{1: 0, 2: 1, 3: 1, 4: 1, 5: 1, 6: 0, 7: 0, 8: 0, 10: 0, 11: 0, 12: 1}

// parseLineHeader reads the header of the line program at off. next is
// where the following program starts (off when its length is unusable).
func parseLineHeader(sec []byte, off uint64, addrSize int, be bool) (p lineProg, next uint64, err error) {
	r := reader{b: sec, off: off, end: uint64(len(sec)), be: be}
	p.off = off
	length := r.fixed(4)
	if length >= 0xfffffff0 {
		if length != 0xffffffff {
			return p, off, fmt.Errorf("%w: program at %#x: reserved length %#x", errLine, off, length)
		}
		p.dwarf64 = true
		length = r.fixed(8)
	}
	if r.bad || length > r.end-r.off {
		return p, off, fmt.Errorf("%w: program at %#x: length %#x beyond the section", errLine, off, length)
	}
	p.end = r.off + length
	next = p.end
	r.end = p.end
	bad := func(what string, args ...any) (lineProg, uint64, error) {
		return p, next, fmt.Errorf("%w: program at %#x: %s", errLine, off, fmt.Sprintf(what, args...))
	}
	p.version = uint16(r.fixed(2))
	if r.bad || p.version < 2 || p.version > 5 {
		return bad("version %d", p.version)
	}
	p.addrSize = uint8(addrSize)
	if p.version >= 5 {
		p.addrSize = r.u8()
		r.u8() // segment selector size
	}
	var hlen uint64
	if p.dwarf64 {
		hlen = r.fixed(8)
	} else {
		hlen = r.fixed(4)
	}
	if r.bad || hlen > p.end-r.off {
		return bad("header length %#x beyond the program", hlen)
	}
	p.start = r.off + hlen
	p.minInst = r.u8()
	p.maxOps = 1
	if p.version >= 4 {
		p.maxOps = r.u8()
	}
	r.u8() // default_is_stmt
	p.lineBase = int8(r.u8())
	p.lineRange = r.u8()
	p.opBase = r.u8()
	if r.bad {
		return bad("truncated header")
	}
	if p.maxOps == 0 || p.lineRange == 0 {
		return bad("maximum operations %d, line range %d", p.maxOps, p.lineRange)
	}
	if p.opBase > 0 {
		if uint64(p.opBase-1) > r.end-r.off {
			return bad("truncated opcode lengths")
		}
		p.opLens = sec[r.off : r.off+uint64(p.opBase-1)]
		r.off += uint64(p.opBase - 1)
	}
	for op, n := range p.opLens {
		if op+1 < len(knownOpLens) && op+1 != 9 && int(n) != knownOpLens[op+1] {
			return bad("opcode %d has %d operands", op+1, n)
		}
	}
	p.tables = r.off
	if p.tables > p.start {
		return bad("opcode lengths beyond the header")
	}
	return p, next, nil
}

// Standard and extended opcodes.
const (
	lnsCopy             = 1
	lnsAdvancePC        = 2
	lnsAdvanceLine      = 3
	lnsSetFile          = 4
	lnsSetColumn        = 5
	lnsConstAddPC       = 8
	lnsFixedAdvancePC   = 9
	lneEndSequence      = 1
	lneSetAddress       = 2
	lneDefineFile       = 3
	lneSetDiscriminator = 4
)

// Row kinds step reports.
const (
	noRow = iota
	row
	endRow
)

// step runs the opcode at r.off. It reports whether a row was emitted
// (its state is then s) and, through r.bad, a malformed opcode.
func (p *lineProg) step(r *reader, s *lineState) (kind int) {
	op := r.u8()
	switch {
	case r.bad:
		return noRow
	case op >= p.opBase:
		adj := uint64(op - p.opBase)
		p.advance(s, adj/uint64(p.lineRange))
		s.line += int64(p.lineBase) + int64(adj%uint64(p.lineRange))
		return row
	case op == 0:
		n := r.uleb()
		from := r.off
		if r.bad || n > r.end-from || n == 0 {
			r.bad = true
			return noRow
		}
		kind := noRow
		switch r.u8() {
		case lneEndSequence:
			kind = endRow
		case lneSetAddress:
			if size := int(p.addrSize); size == 1 || size == 2 || size == 4 || size == 8 {
				s.addr, s.opIndex = r.fixed(size), 0
			} else {
				r.bad = true
			}
		case lneDefineFile:
			p.defines = true
		case lneSetDiscriminator:
		}
		if r.off > from+n {
			r.bad = true
		}
		r.off = from + n
		return kind
	case op == lnsCopy:
		return row
	case op == lnsAdvancePC:
		p.advance(s, r.uleb())
	case op == lnsAdvanceLine:
		s.line += r.sleb()
	case op == lnsSetFile:
		s.file = r.uleb()
	case op == lnsConstAddPC:
		p.advance(s, uint64(255-p.opBase)/uint64(p.lineRange))
	case op == lnsFixedAdvancePC:
		s.addr += r.fixed(2)
		s.opIndex = 0
	default:
		// Other standard opcodes: skip their LEB128 operands.
		for range p.opLens[op-1] {
			r.uleb()
		}
	}
	return noRow
}

// advance moves the operation pointer by n operations.
func (p *lineProg) advance(s *lineState, n uint64) {
	ops := s.opIndex + n
	s.addr += uint64(p.minInst) * (ops / uint64(p.maxOps))
	s.opIndex = ops % uint64(p.maxOps)
}

// reset is the state at the start of a sequence (debug/dwarf starts at
// file 1 for every version).
func reset() lineState { return lineState{file: 1, line: 1} }

// index runs program p once, recording its sequences and checkpoints.
func (t *lineTable) index(p lineProg) error {
	pi := uint32(len(t.progs))
	t.progs = append(t.progs, p)
	prog := &t.progs[pi]
	r := reader{b: t.sec, off: p.start, end: p.end, be: t.be}
	s := reset()
	rows := 0
	first := uint32(len(t.marks))
	// Special opcodes are most of a program: their effect is tabled, once
	// for all the programs that share the parameters (a compiler's),
	// when an operation is one instruction (all but VLIW machines).
	fast := p.maxOps == 1
	sp := &t.special
	if key := [4]int{int(p.opBase), int(p.lineRange), int(p.lineBase), int(p.minInst)}; fast && (!sp.ok || sp.key != key) {
		sp.key, sp.ok = key, true
		var q, rem uint64
		for op := int(p.opBase); op < 256; op++ {
			sp.addr[op] = uint64(p.minInst) * q
			sp.line[op] = int64(p.lineBase) + int64(rem)
			if rem++; rem == uint64(p.lineRange) {
				q, rem = q+1, 0
			}
		}
	}
	addrAdv, lineAdv := &sp.addr, &sp.line
	sec := t.sec[:p.end]
	for r.off < r.end {
		kind := noRow
		op := sec[r.off]
		switch {
		case fast && op >= p.opBase:
			r.off++
			s.addr += addrAdv[op]
			s.line += lineAdv[op]
			kind = row
		case fast && op == lnsCopy:
			r.off++
			kind = row
		case fast && op < p.opBase && (op == lnsAdvanceLine || op == lnsSetColumn) && r.off+1 < r.end && sec[r.off+1] < 0x80:
			// One-byte operands, the usual case.
			if op == lnsAdvanceLine {
				s.line += int64(sec[r.off+1]) - int64(sec[r.off+1]&0x40)<<1
			}
			r.off += 2
		default:
			kind = prog.step(&r, &s)
		}
		if r.bad {
			t.marks = t.marks[:first]
			return fmt.Errorf("%w: program at %#x: bad opcode before %#x", errLine, p.off, r.off)
		}
		if kind == noRow {
			continue
		}
		if kind == endRow {
			if rows > 0 && s.addr > t.marks[first].addr {
				if len(t.seqs) >= maxLineSeqs {
					return errTooManySeqs
				}
				t.seqs = append(t.seqs, lineSeq{lo: t.marks[first].addr, hi: s.addr, prog: pi, first: first, last: uint32(len(t.marks))})
			} else {
				t.marks = t.marks[:first]
			}
			s, rows, first = reset(), 0, uint32(len(t.marks))
			continue
		}
		if rows%markEvery == 0 {
			t.marks = append(t.marks, lineMark{addr: s.addr, off: r.off, line: s.line, file: s.file, opIndex: s.opIndex})
		}
		rows++
	}
	t.marks = t.marks[:first] // a sequence without its end is not one
	return nil
}

// maxOverlap bounds how far back a lookup looks for a sequence holding
// its address among those that start below it.
const maxOverlap = 64

// lookup returns the file and line of address v: the last row at or
// below v in the sequence holding v; "", 0 when no sequence holds v or
// its row names no file. The error is that of a damaged file table.
func (t *lineTable) lookup(v uint64) (file string, line int, err error) {
	i := sort.Search(len(t.seqs), func(i int) bool { return t.seqs[i].lo > v }) - 1
	// Sequences may overlap or nest (code the linker discarded keeps its
	// rows, at address 0 or where the kept copy is): the innermost
	// holding v wins.
	for n := 0; i >= 0 && v >= t.seqs[i].hi; i, n = i-1, n+1 {
		if t.seqs[i].maxHi <= v || n == maxOverlap {
			return "", 0, nil
		}
	}
	if i < 0 {
		return "", 0, nil
	}
	seq := t.seqs[i]
	p := &t.progs[seq.prog]
	marks := t.marks[seq.first:seq.last]
	k := sort.Search(len(marks), func(k int) bool { return marks[k].addr > v }) - 1
	if k < 0 {
		return "", 0, nil
	}
	m := marks[k]
	s := lineState{addr: m.addr, opIndex: m.opIndex, file: m.file, line: m.line}
	best, bestOff := s, m.off
	r := reader{b: t.sec, off: m.off, end: p.end, be: t.be}
	for r.off < r.end {
		kind := p.step(&r, &s)
		if r.bad || kind == endRow {
			break
		}
		if kind == row {
			if s.addr > v {
				break
			}
			best, bestOff = s, r.off
		}
	}
	files, err := t.files(p, bestOff)
	if best.file >= uint64(len(files)) || files[best.file].name == "" {
		return "", 0, err
	}
	return t.fileName(p, files[best.file]), int(best.line), err
}

// fileName returns the full name of f, a file of program p.
func (t *lineTable) fileName(p *lineProg, f lineFile) string {
	if !f.rel {
		return f.name
	}
	if !p.compDirOK {
		p.compDirOK = true
		if t.compDir != nil {
			// A missing compilation directory leaves names relative,
			// as debug/dwarf does.
			p.compDir, _ = t.compDir(p.off)
		}
	}
	dir := p.compDir
	if f.dir > 0 {
		dir = joinPath(dir, p.dirs[f.dir])
	}
	return joinPath(dir, f.name)
}

// fileEntry makes the DWARF 2-4 file entry name in directory dir of p.
func fileEntry(p *lineProg, name string, dir uint64) (lineFile, bool) {
	switch {
	case path.IsAbs(name):
		return lineFile{name: name}, true
	case dir >= uint64(len(p.dirs)):
		return lineFile{}, false
	case dir > 0 && path.IsAbs(p.dirs[dir]):
		return lineFile{name: joinPath(p.dirs[dir], name)}, true
	}
	return lineFile{name: name, dir: dir, rel: true}, true
}

// files returns the file names of program p as they stand at offset at:
// its header's, and those DW_LNE_define_file added before at. The error
// of a damaged table is returned once.
func (t *lineTable) files(p *lineProg, at uint64) ([]lineFile, error) {
	if !p.filesDone {
		p.filesDone = true
		p.dirs, p.files, p.filesErr = t.readFiles(p)
		if p.filesErr != nil {
			// Said once: the program names no files.
			p.dirs, p.files = nil, nil
			return nil, p.filesErr
		}
	}
	if !p.defines || p.filesErr != nil {
		return p.files, nil
	}
	files := slices.Clone(p.files)
	r := reader{b: t.sec, off: p.start, end: min(at, p.end), be: t.be}
	for r.off < r.end {
		op := r.u8()
		if r.bad {
			break
		}
		switch {
		case op >= p.opBase || op == lnsCopy || op == lnsConstAddPC:
		case op == 0:
			n := r.uleb()
			from := r.off
			if r.bad || n == 0 || n > p.end-from {
				return files, nil
			}
			if r.u8() == lneDefineFile {
				fr := reader{b: t.sec, off: r.off, end: from + n, be: t.be}
				name := fr.cstr()
				dir := fr.uleb()
				if fr.bad || name == "" {
					return files, nil
				}
				f, ok := fileEntry(p, name, dir)
				if !ok {
					return files, nil
				}
				files = append(files, f)
			}
			r.off = from + n
		case op == lnsFixedAdvancePC:
			r.fixed(2)
		case op == lnsAdvancePC || op == lnsSetFile:
			r.uleb()
		case op == lnsAdvanceLine:
			r.sleb()
		default:
			for range p.opLens[op-1] {
				r.uleb()
			}
		}
	}
	return files, nil
}

// joinPath joins a directory and a relative file name as debug/dwarf
// does for Unix paths.
func joinPath(dir, name string) string {
	if dir == "" {
		return name
	}
	return path.Join(dir, name)
}

// DW_LNCT content types and the DW_FORMs a DWARF 5 line header uses.
const (
	lnctPath     = 1
	lnctDirIndex = 2

	formBlock    = 0x09
	formData1    = 0x0b
	formData2    = 0x05
	formData4    = 0x06
	formData8    = 0x07
	formData16   = 0x1e
	formString   = 0x08
	formStrp     = 0x0e
	formLineStrp = 0x1f
	formStrpSup  = 0x1d
	formStrx     = 0x1a
	formStrx1    = 0x25
	formStrx2    = 0x26
	formStrx3    = 0x27
	formStrx4    = 0x28
	formUdata    = 0x0f
)

// readFiles reads program p's directory and file tables. Index 0 of a
// DWARF 2-4 file table is no file; DWARF 5 numbers from 0.
func (t *lineTable) readFiles(p *lineProg) (dirs []string, files []lineFile, err error) {
	r := reader{b: t.sec, off: p.tables, end: p.start, be: t.be}
	bad := func(what string) ([]string, []lineFile, error) {
		return nil, nil, fmt.Errorf("%w: program at %#x: %s", errLine, p.off, what)
	}
	if p.version < 5 {
		p.dirs = []string{""}
		for {
			d := r.cstr()
			if r.bad {
				return bad("truncated directory table")
			}
			if d == "" {
				break
			}
			p.dirs = append(p.dirs, d)
		}
		files = []lineFile{{}}
		for {
			name := r.cstr()
			if r.bad {
				return bad("truncated file table")
			}
			if name == "" {
				break
			}
			dir := r.uleb()
			r.uleb() // modification time
			r.uleb() // length
			if r.bad {
				return bad("truncated file table")
			}
			f, ok := fileEntry(p, name, dir)
			if !ok {
				return bad("directory index out of range")
			}
			files = append(files, f)
		}
		return p.dirs, files, nil
	}
	readFormat := func() [][2]uint64 {
		n := r.u8()
		f := make([][2]uint64, 0, min(int(n), int(r.end-r.off)))
		for range n {
			f = append(f, [2]uint64{r.uleb(), r.uleb()})
		}
		return f
	}
	readEntries := func(format [][2]uint64, dirs []string) ([]string, error) {
		n := r.uleb()
		if r.bad || n > r.end-r.off {
			return nil, fmt.Errorf("%w: program at %#x: %d entries in %d bytes", errLine, p.off, n, r.end-r.off)
		}
		out := make([]string, 0, n)
		for range n {
			var name, dir string
			for _, f := range format {
				var str string
				var val uint64
				switch f[1] {
				case formString:
					str = r.cstr()
				case formStrp, formLineStrp:
					var off uint64
					if p.dwarf64 {
						off = r.fixed(8)
					} else {
						off = r.fixed(4)
					}
					which := ".debug_str"
					if f[1] == formLineStrp {
						which = ".debug_line_str"
					}
					var data []byte
					if t.strings != nil {
						d, err := t.strings(which)
						if err != nil {
							return nil, err
						}
						data = d
					}
					if off >= uint64(len(data)) {
						return nil, fmt.Errorf("%w: program at %#x: offset %#x beyond %s", errLine, p.off, off, which)
					}
					str = cstring(data[off:])
				case formStrpSup:
					if p.dwarf64 {
						r.fixed(8)
					} else {
						r.fixed(4)
					}
				case formStrx, formUdata:
					val = r.uleb()
				case formStrx1, formData1:
					val = r.fixed(1)
				case formStrx2, formData2:
					val = r.fixed(2)
				case formStrx3:
					r.fixed(3)
				case formStrx4, formData4:
					val = r.fixed(4)
				case formData8:
					val = r.fixed(8)
				case formData16:
					r.fixed(8)
					r.fixed(8)
				case formBlock:
					n := r.uleb()
					if n > r.end-r.off {
						r.bad = true
					} else {
						r.off += n
					}
				default:
					return nil, fmt.Errorf("%w: program at %#x: form %#x", errLine, p.off, f[1])
				}
				if f[1] == formStrx || (f[1] >= formStrx1 && f[1] <= formStrx4) {
					str, val = "", 0 // string offsets tables (split DWARF) are not read
				}
				switch f[0] {
				case lnctPath:
					name = str
				case lnctDirIndex:
					if val >= uint64(len(dirs)) {
						return nil, fmt.Errorf("%w: program at %#x: directory index %d of %d", errLine, p.off, val, len(dirs))
					}
					dir = dirs[val]
				}
			}
			if r.bad {
				return nil, fmt.Errorf("%w: program at %#x: truncated entry", errLine, p.off)
			}
			if dir != "" && name != "" && !path.IsAbs(name) {
				name = path.Join(dir, name)
			}
			out = append(out, name)
		}
		return out, nil
	}
	dirs, err = readEntries(readFormat(), nil)
	if err != nil {
		return nil, nil, err
	}
	names, err := readEntries(readFormat(), dirs)
	if err != nil {
		return nil, nil, err
	}
	files = make([]lineFile, len(names))
	for i, n := range names {
		files[i].name = n
	}
	return dirs, files, nil
}
