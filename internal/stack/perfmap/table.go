package perfmap

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"sort"
)

// Limits bound what is read of one map and kept of it. The map is
// written by the target, so its size and every line of it are hostile
// input. A table keeps the names and about 55 bytes per symbol: with
// DefaultLimits a hostile map costs at most about 80 MiB (64 MiB of
// names), a map of 100,000 node symbols (5 MiB) 8.5 MiB, and a typical
// one (a few thousand symbols) well under a megabyte.
type Limits struct {
	// MaxBytes bounds the bytes read of the file over the life of the
	// table, tails included: a node process's map grows without end,
	// one line per compiled function.
	MaxBytes int64
	// MaxEntries bounds the symbols kept.
	MaxEntries int
	// MaxName bounds the bytes kept of one name (at most 65535); longer
	// names, which no runtime writes, are cut.
	MaxName int
}

// DefaultLimits are the limits of the maps the resolver reads.
var DefaultLimits = Limits{MaxBytes: 64 << 20, MaxEntries: 1 << 18, MaxName: 1024}

// maxHex is the longest hex field: 16 digits are 64 bits.
const maxHex = 16

// Stats says what a table made of the bytes it read.
type Stats struct {
	Bytes     int64 // bytes parsed, through the last complete line
	Lines     int   // complete lines seen
	Entries   int   // symbols kept
	Malformed int   // lines skipped: not "START SIZE NAME", an empty symbol or one past the address space
	LongNames int   // names cut to MaxName bytes
	// Full says reading stopped at MaxBytes or MaxEntries: symbols past
	// that point are not named.
	Full bool
}

// Table is the symbols of one perf map. Where symbols overlap (a JIT that
// moved or freed code and put other code there), the one written last
// names the address, as perf reads these maps. Lookups are a binary
// search over disjoint address ranges, kept up to date as lines are
// added, each batch in time proportional to its own size and the ranges
// already there.
//
// The zero Table is not usable; make one with NewTable.
type Table struct {
	lim   Limits
	stats Stats

	// names holds the symbols' names, in chunks of nameChunk bytes so
	// that growing never copies them; a name never straddles two chunks.
	names [][]byte
	// entries are the symbols by number (file order): where the name is.
	entries []entry
	// The index: starts[i] begins a range named by entries[ids[i]], or
	// by nothing when ids[i] < 0, that ends where starts[i+1] begins.
	// Addresses below starts[0] are named by nothing.
	starts []uint64
	ids    []int32

	// partial holds the line being read, up to maxLine bytes; skipping
	// counts its bytes past that.
	partial  []byte
	skipping int64
}

// entry is one symbol: where it is, and where its name is in names
// (chunk name/nameChunk, offset name%nameChunk).
type entry struct {
	start, size uint64
	name        uint32
	n           uint16
}

// nameChunk is the size of one chunk of names, more than the longest
// name (MaxName <= 65535).
const nameChunk = 256 << 10

// maxNameBytes bounds Limits.MaxBytes: names are found by a 32-bit offset.
const maxNameBytes = 1<<32 - nameChunk

// NewTable returns an empty table with limits lim (zero fields take
// DefaultLimits').
func NewTable(lim Limits) *Table {
	if lim.MaxBytes <= 0 || lim.MaxBytes > maxNameBytes {
		lim.MaxBytes = DefaultLimits.MaxBytes
	}
	if lim.MaxEntries <= 0 {
		lim.MaxEntries = DefaultLimits.MaxEntries
	}
	if lim.MaxName <= 0 || lim.MaxName > 0xffff {
		lim.MaxName = DefaultLimits.MaxName
	}
	return &Table{lim: lim}
}

// Parse reads a whole perf map from r. A last line without its newline is
// not read (Stats.Bytes stops before it): the writer may be halfway
// through it.
func Parse(r io.Reader, lim Limits) (*Table, error) {
	t := NewTable(lim)
	_, err := t.Read(r)
	return t, err
}

// Stats says what the table made of what it read.
func (t *Table) Stats() Stats { return t.stats }

// maxLine is the longest line kept whole: two hex fields with their
// separators and a name of MaxName bytes. Longer lines keep their first
// maxLine bytes, enough to cut the name.
func (t *Table) maxLine() int { return 2*(maxHex+2+8) + t.lim.MaxName }

// ErrFull is returned by Read once the table holds all it may.
var ErrFull = errors.New("perf map limit reached")

// Read parses the complete lines of r, the map's bytes from where the last
// Read stopped (its Stats.Bytes), and adds their symbols. It returns the
// bytes consumed: through the last newline read, so that the next Read
// starts at the beginning of the line that was not complete. Read stops
// at the limits, with ErrFull (then or later); other errors are r's.
func (t *Table) Read(r io.Reader) (int64, error) {
	if t.stats.Full {
		return 0, ErrFull
	}
	// A line left incomplete by the last Read comes again from its
	// start.
	t.partial, t.skipping = t.partial[:0], 0
	lr := &io.LimitedReader{R: r, N: t.lim.MaxBytes - t.stats.Bytes}
	var (
		buf      = make([]byte, 64<<10)
		consumed int64
		batch    []batchEntry
		err      error
	)
	for err == nil && !t.stats.Full {
		var n int
		n, err = lr.Read(buf)
		data := buf[:n]
		for len(data) > 0 && !t.stats.Full {
			nl := bytes.IndexByte(data, '\n')
			if nl < 0 {
				t.hold(data)
				break
			}
			t.hold(data[:nl])
			data = data[nl+1:]
			t.stats.Lines++
			if e, ok := t.add(t.partial); ok {
				batch = append(batch, e)
				if len(batch) == maxBatch {
					t.index(batch)
					batch = batch[:0]
				}
			}
			consumed += int64(len(t.partial)) + t.skipping + 1
			t.partial, t.skipping = t.partial[:0], 0
		}
	}
	t.stats.Bytes += consumed
	if lr.N <= 0 {
		// The budget is spent: what follows is never read.
		t.stats.Full = true
	}
	t.index(batch)
	switch {
	case err != nil && err != io.EOF:
		return consumed, err
	case t.stats.Full:
		return consumed, ErrFull
	}
	return consumed, nil
}

// hold adds b to the line being read, keeping its first maxLine bytes and
// counting the rest as skipped: a line may span reads, and the partial
// line must not grow with a hostile line's length.
func (t *Table) hold(b []byte) {
	room := t.maxLine() - len(t.partial)
	if room >= len(b) {
		t.partial = append(t.partial, b...)
		return
	}
	if room > 0 {
		t.partial = append(t.partial, b[:room]...)
		b = b[room:]
	}
	t.skipping += int64(len(b))
}

// maxBatch bounds the symbols waiting to be indexed, and so the memory
// an index costs on the way: a first read of a large map is indexed in
// batches, each laid over the last.
const maxBatch = 1 << 16

// batchEntry is a symbol added by one Read, waiting to be indexed.
type batchEntry struct {
	start, end uint64
	id         int32
}

// add parses one line (without its newline) and keeps its symbol.
func (t *Table) add(line []byte) (batchEntry, bool) {
	start, size, name, ok := ParseLine(line)
	if !ok || size == 0 || start+size < start {
		t.stats.Malformed++
		return batchEntry{}, false
	}
	id := len(t.entries)
	if id >= t.lim.MaxEntries {
		t.stats.Full = true
		return batchEntry{}, false
	}
	if len(name) > t.lim.MaxName {
		name = name[:t.lim.MaxName]
		t.stats.LongNames++
	}
	last := len(t.names) - 1
	if last < 0 || len(t.names[last])+len(name) > nameChunk {
		t.names = append(t.names, make([]byte, 0, nameChunk))
		last++
	}
	t.entries = append(t.entries, entry{start: start, size: size, name: uint32(last*nameChunk + len(t.names[last])), n: uint16(len(name))})
	t.names[last] = append(t.names[last], name...)
	t.stats.Entries++
	return batchEntry{start: start, end: start + size, id: int32(id)}, true
}

// ParseLine parses one line of a perf map, "START SIZE NAME" (START and
// SIZE in hex, with or without 0x; NAME the rest of the line, spaces and
// all), as perf and the runtimes that write these maps (V8, CPython,
// perf-map-agent) agree on it. A trailing carriage return is not part of
// the name. The name aliases line.
func ParseLine(line []byte) (start, size uint64, name []byte, ok bool) {
	start, line, ok = hexField(line)
	if !ok {
		return 0, 0, nil, false
	}
	size, line, ok = hexField(line)
	if !ok {
		return 0, 0, nil, false
	}
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) == 0 {
		return 0, 0, nil, false
	}
	return start, size, line, true
}

// hexField reads a hex number and the blanks after it (at least one).
func hexField(b []byte) (uint64, []byte, bool) {
	if len(b) >= 2 && b[0] == '0' && (b[1] == 'x' || b[1] == 'X') {
		b = b[2:]
	}
	var v uint64
	n := 0
	for ; n < len(b); n++ {
		c := b[n]
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			goto end
		}
		if n == maxHex {
			return 0, nil, false
		}
		v = v<<4 | uint64(d)
	}
end:
	if n == 0 {
		return 0, nil, false
	}
	b = b[n:]
	blanks := 0
	for blanks < len(b) && (b[blanks] == ' ' || b[blanks] == '\t') {
		blanks++
	}
	if blanks == 0 {
		return 0, nil, false
	}
	return v, b[blanks:], true
}

// Lookup returns the name of the symbol that holds addr, written last
// among those that do. The name aliases the table: copy it to keep it.
func (t *Table) Lookup(addr uint64) ([]byte, bool) {
	s, ok := t.Symbol(addr)
	return s.Name, ok
}

// Symbol is one symbol of a map.
type Symbol struct {
	Start, Size uint64
	Name        []byte // aliases the table
}

// Symbol returns the symbol that holds addr, written last among those
// that do: where it starts and ends, for a caller that must know the
// code (a trampoline's unwind rules), and its name.
func (t *Table) Symbol(addr uint64) (Symbol, bool) {
	i := sort.Search(len(t.starts), func(i int) bool { return t.starts[i] > addr }) - 1
	if i < 0 || t.ids[i] < 0 {
		return Symbol{}, false
	}
	e := t.entries[t.ids[i]]
	chunk, off := e.name/nameChunk, e.name%nameChunk
	return Symbol{Start: e.start, Size: e.size, Name: t.names[chunk][off : off+uint32(e.n)]}, true
}

// index adds a batch of symbols, all written after those already in the
// index, to it: their own ranges (the last written winning among them)
// laid over the index's.
func (t *Table) index(batch []batchEntry) {
	if len(batch) == 0 {
		return
	}
	starts, ids := sweep(batch)
	if len(t.starts) == 0 {
		t.starts, t.ids = starts, ids
		return
	}
	t.starts, t.ids = overlay(t.starts, t.ids, starts, ids)
}

// sweep turns symbols into disjoint ranges, each named by the last
// written of the symbols that hold it, in O(n log n): a sweep over the
// symbols in address order, with those open at each point in a heap by
// their number. What names an address changes only where a symbol starts
// or where the symbol on top of the heap ends (one below it ending
// changes nothing), so those are the only points visited. It sorts batch.
func sweep(batch []batchEntry) ([]uint64, []int32) {
	slices.SortFunc(batch, func(a, b batchEntry) int {
		switch {
		case a.start < b.start:
			return -1
		case a.start > b.start:
			return 1
		}
		return 0
	})
	var (
		open   openHeap
		next   int
		starts = make([]uint64, 0, 2*len(batch))
		ids    = make([]int32, 0, 2*len(batch))
	)
	for next < len(batch) || len(open) > 0 {
		var p uint64
		if len(open) == 0 || next < len(batch) && batch[next].start < open[0].end {
			p = batch[next].start
		} else {
			p = open[0].end
		}
		for next < len(batch) && batch[next].start == p {
			open.push(batch[next])
			next++
		}
		for len(open) > 0 && open[0].end <= p {
			open.pop()
		}
		id := int32(-1)
		if len(open) > 0 {
			id = open[0].id
		}
		if n := len(ids); n == 0 && id < 0 || n > 0 && ids[n-1] == id {
			continue
		}
		starts, ids = append(starts, p), append(ids, id)
	}
	return starts, ids
}

// openHeap is a max-heap of symbols by number: the top one names the
// addresses of the sweep's current point. Symbols whose end has passed
// are dropped when they reach the top.
type openHeap []batchEntry

func (h *openHeap) push(e batchEntry) {
	*h = append(*h, e)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if s[p].id >= s[i].id {
			break
		}
		s[p], s[i] = s[i], s[p]
		i = p
	}
}

func (h *openHeap) pop() {
	s := *h
	n := len(s) - 1
	s[0] = s[n]
	s = s[:n]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && s[l].id > s[m].id {
			m = l
		}
		if r < n && s[r].id > s[m].id {
			m = r
		}
		if m == i {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
}

// overlay lays the ranges of newer symbols over older ones: an address
// the newer ranges name keeps their name, any other the older one's. Both
// are step functions over the address space; one pass over their points
// in order merges them.
func overlay(oldStarts []uint64, oldIDs []int32, newStarts []uint64, newIDs []int32) ([]uint64, []int32) {
	starts := make([]uint64, 0, len(oldStarts)+len(newStarts))
	ids := make([]int32, 0, len(oldStarts)+len(newStarts))
	var i, j int
	oldID, newID := int32(-1), int32(-1)
	for i < len(oldStarts) || j < len(newStarts) {
		var p uint64
		switch {
		case j == len(newStarts) || i < len(oldStarts) && oldStarts[i] < newStarts[j]:
			p = oldStarts[i]
		default:
			p = newStarts[j]
		}
		for i < len(oldStarts) && oldStarts[i] == p {
			oldID = oldIDs[i]
			i++
		}
		for j < len(newStarts) && newStarts[j] == p {
			newID = newIDs[j]
			j++
		}
		id := oldID
		if newID >= 0 {
			id = newID
		}
		if n := len(ids); n == 0 && id < 0 || n > 0 && ids[n-1] == id {
			continue
		}
		starts, ids = append(starts, p), append(ids, id)
	}
	return starts, ids
}
