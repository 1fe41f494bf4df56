package nodev8

import (
	"encoding/binary"
	"sort"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/cpuwhy/cpuwhy/internal/unwind"
)

// Limits on what is read of the target's heap, hostile memory.
const (
	// maxName bounds a function's or a script's name.
	maxName = 512
	// maxStringDepth bounds the ropes (cons and thin strings) followed
	// for one string.
	maxStringDepth = 8
	// scopeInfoSlots is how far into a ScopeInfo the name is looked for
	// (as the OpenTelemetry profiler does): the name follows the fixed
	// slots and the context locals, whose count is read, and the
	// function's start and end positions follow it.
	scopeInfoSlots = 16
	// maxSource bounds the source read of one script to find its lines
	// when V8 has not computed them (line_ends), and maxLines the lines
	// kept.
	maxSource = 4 << 20
	maxLines  = 1 << 20
	// maxFuncs, maxScripts and maxMaps bound the caches.
	maxFuncs   = 1 << 14
	maxScripts = 64
	maxMaps    = 1 << 10
)

// Func is what a JavaScript frame's function is: its name ("" for an
// anonymous function), its script's name and the line it starts on (0
// when unknown).
type Func struct {
	Name string
	File string
	Line int
}

// heap reads V8's objects from a process's memory. Every pointer is
// checked to be a tagged heap object of the expected instance type before
// its fields are read, every length is capped, and every read may fail.
type heap struct {
	l       *Layout
	mem     unwind.Memory
	types   map[uint64]uint16 // instance types, by the tagged map
	funcs   map[uint64]cachedFunc
	scripts map[uint64][]int32 // line ends, by the tagged script
	buf     []byte
}

type cachedFunc struct {
	nameOrScope uint64 // the SharedFunctionInfo's field when read: a change is another function
	f           Func
}

func newHeap(l *Layout, mem unwind.Memory) *heap {
	return &heap{l: l, mem: mem, types: map[uint64]uint16{}, funcs: map[uint64]cachedFunc{}, scripts: map[uint64][]int32{}}
}

func (h *heap) word(addr uint64) (uint64, bool) {
	var b [8]byte
	if n, err := h.mem.ReadAt(b[:], addr); err != nil || n != 8 {
		return 0, false
	}
	return binary.LittleEndian.Uint64(b[:]), true
}

func (h *heap) isObject(v uint64) bool {
	return int64(v)&h.l.HeapObjectTagMask == h.l.HeapObjectTag && v > 0xffff
}

func (h *heap) isSmi(v uint64) bool { return int64(v)&h.l.SmiTagMask == h.l.SmiTag }

func (h *heap) smi(v uint64) int64 { return int64(v) >> (h.l.SmiShiftSize + 1) }

// field reads the tagged field at off of object obj (tagged).
func (h *heap) field(obj uint64, off int64) (uint64, bool) {
	return h.word(obj - uint64(h.l.HeapObjectTag) + uint64(off))
}

// typeOf returns the instance type of the object v points to.
func (h *heap) typeOf(v uint64) (uint16, bool) {
	if !h.isObject(v) {
		return 0, false
	}
	m, ok := h.field(v, h.l.HeapObjectMap)
	if !ok || !h.isObject(m) {
		return 0, false
	}
	if t, ok := h.types[m]; ok {
		return t, true
	}
	var b [2]byte
	if n, err := h.mem.ReadAt(b[:], m-uint64(h.l.HeapObjectTag)+uint64(h.l.MapInstanceType)); err != nil || n != 2 {
		return 0, false
	}
	t := binary.LittleEndian.Uint16(b[:])
	if len(h.types) < maxMaps {
		h.types[m] = t
	}
	return t, true
}

func (h *heap) is(v uint64, typ int64) bool {
	t, ok := h.typeOf(v)
	return ok && int64(t) == typ
}

// object reads the first n bytes of object v (tagged), whose map must
// say instance type typ: one read for the map and the fields wanted.
func (h *heap) object(v uint64, typ int64, n int) ([]byte, bool) {
	n = max(n, int(h.l.HeapObjectMap)+8)
	if !h.isObject(v) || n > 256 {
		return nil, false
	}
	b := h.scratch(n)
	if k, err := h.mem.ReadAt(b, v-uint64(h.l.HeapObjectTag)); err != nil || k != n {
		return nil, false
	}
	m := binary.LittleEndian.Uint64(b[h.l.HeapObjectMap:])
	if !h.isObject(m) {
		return nil, false
	}
	t, ok := h.types[m]
	if !ok {
		var tb [2]byte
		if k, err := h.mem.ReadAt(tb[:], m-uint64(h.l.HeapObjectTag)+uint64(h.l.MapInstanceType)); err != nil || k != 2 {
			return nil, false
		}
		t = binary.LittleEndian.Uint16(tb[:])
		if len(h.types) < maxMaps {
			h.types[m] = t
		}
	}
	return b, int64(t) == typ
}

// function reads what JSFunction fn (tagged) runs. The function and its
// SharedFunctionInfo are read whole (one read each, for the map and the
// fields), as every sample reads them again.
func (h *heap) function(fn uint64) (Func, bool) {
	b, ok := h.object(fn, h.l.TypeJSFunction, int(h.l.JSFunctionShared)+8)
	if !ok {
		return Func{}, false
	}
	sfi := binary.LittleEndian.Uint64(b[h.l.JSFunctionShared:])
	b, ok = h.object(sfi, h.l.TypeSFI, int(max(h.l.SFINameOrScope, h.l.SFIScript))+8)
	if !ok {
		return Func{}, false
	}
	nos := binary.LittleEndian.Uint64(b[h.l.SFINameOrScope:])
	script := binary.LittleEndian.Uint64(b[h.l.SFIScript:])
	if c, ok := h.funcs[sfi]; ok && c.nameOrScope == nos {
		return c.f, true
	}
	var f Func
	start := int64(-1)
	switch {
	case h.isSmi(nos): // no name
	case h.is(nos, h.l.TypeScopeInfo):
		f.Name, start = h.scopeInfo(nos)
	default:
		name, ok := h.str(nos)
		if !ok {
			return Func{}, false
		}
		f.Name = name
	}
	if h.is(script, h.l.TypeScript) {
		if name, ok := h.fieldString(script, h.l.ScriptName); ok {
			f.File = name
		}
		if start >= 0 {
			f.Line = h.line(script, start)
		}
	}
	if len(h.funcs) >= maxFuncs {
		clear(h.funcs)
	}
	h.funcs[sfi] = cachedFunc{nameOrScope: nos, f: f}
	return f, true
}

// scopeInfo finds a function's name and start position in its ScopeInfo:
// past the fixed slots and the context locals' names and infos, the first
// string is the name, and the first two small integers in a row, the
// first below the second, are its start and end. It returns "" and -1
// for what it does not find.
func (h *heap) scopeInfo(si uint64) (string, int64) {
	base := si - uint64(h.l.HeapObjectTag) + uint64(h.l.HeapObjectMap) + 8
	var slots [scopeInfoSlots]uint64
	for i := range slots {
		v, ok := h.word(base + 8*uint64(i))
		if !ok {
			return "", -1
		}
		slots[i] = v
	}
	nc := int64(-1)
	if i := h.l.ScopeInfoNContextLocals; i >= 0 && i < scopeInfoSlots && h.isSmi(slots[i]) {
		nc = h.smi(slots[i])
	}
	if nc < 0 || nc > scopeInfoSlots {
		return "", -1
	}
	name, start := "", int64(-1)
	prev := uint64(1) // not a small integer
	for i := h.l.ScopeInfoFirstVars + 2*nc; i >= 0 && i < scopeInfoSlots; i++ {
		cur := slots[i]
		if name == "" && h.isObject(cur) {
			name, _ = h.str(cur)
		}
		if h.isSmi(cur) && h.isSmi(prev) && h.smi(prev) >= 0 && h.smi(prev) < h.smi(cur) {
			start = h.smi(prev)
			break
		}
		prev = cur
	}
	return name, start
}

func (h *heap) fieldString(obj uint64, off int64) (string, bool) {
	v, ok := h.field(obj, off)
	if !ok {
		return "", false
	}
	return h.str(v)
}

// str reads a string object: sequential (one or two bytes a character),
// or a rope of them (cons, thin), at most maxName bytes. A string of
// another kind (external, sliced) is not read.
func (h *heap) str(v uint64) (string, bool) {
	var sb strings.Builder
	if !h.appendString(&sb, v, 0) {
		return "", false
	}
	s := sb.String()
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return s, true
}

func (h *heap) appendString(sb *strings.Builder, v uint64, depth int) bool {
	if depth > maxStringDepth {
		return false
	}
	t, ok := h.typeOf(v)
	if !ok || int64(t) >= h.l.FirstNonstringType {
		return false
	}
	switch int64(t) & h.l.StringRepresentationMask {
	case h.l.SeqStringTag:
		var lb [4]byte
		if n, err := h.mem.ReadAt(lb[:], v-uint64(h.l.HeapObjectTag)+uint64(h.l.StringLength)); err != nil || n != 4 {
			return false
		}
		length := int64(int32(binary.LittleEndian.Uint32(lb[:])))
		if length < 0 {
			return false
		}
		room := int64(maxName - sb.Len())
		if room <= 0 {
			return true
		}
		n := min(length, room)
		if int64(t)&h.l.StringEncodingMask == h.l.OneByteStringTag {
			b := h.scratch(int(n))
			if k, err := h.mem.ReadAt(b, v-uint64(h.l.HeapObjectTag)+uint64(h.l.SeqOneByteChars)); err != nil || k != len(b) {
				return false
			}
			for _, c := range b { // Latin-1
				sb.WriteRune(rune(c))
			}
			return true
		}
		b := h.scratch(int(2 * n))
		if k, err := h.mem.ReadAt(b, v-uint64(h.l.HeapObjectTag)+uint64(h.l.SeqTwoByteChars)); err != nil || k != len(b) {
			return false
		}
		u := make([]uint16, n)
		for i := range u {
			u[i] = binary.LittleEndian.Uint16(b[2*i:])
		}
		sb.WriteString(string(utf16.Decode(u)))
		return true
	case h.l.ConsStringTag:
		first, ok1 := h.field(v, h.l.ConsFirst)
		second, ok2 := h.field(v, h.l.ConsSecond)
		return ok1 && ok2 && h.appendString(sb, first, depth+1) && h.appendString(sb, second, depth+1)
	case h.l.ThinStringTag:
		actual, ok := h.field(v, h.l.ThinActual)
		return ok && h.appendString(sb, actual, depth+1)
	}
	return false
}

func (h *heap) scratch(n int) []byte {
	if cap(h.buf) < n {
		h.buf = make([]byte, n)
	}
	return h.buf[:n]
}

// line returns the line (from 1) of position pos in script, from the
// line ends V8 computed, or else from its source; 0 when neither can be
// read.
func (h *heap) line(script uint64, pos int64) int {
	ends, ok := h.scripts[script]
	if !ok {
		ends = h.lineEnds(script)
		if len(h.scripts) >= maxScripts {
			clear(h.scripts)
		}
		h.scripts[script] = ends
	}
	if len(ends) == 0 {
		return 0
	}
	i := sort.Search(len(ends), func(i int) bool { return int64(ends[i]) >= pos })
	if i == len(ends) {
		return 0 // past the end: not this script's position
	}
	return i + 1
}

// lineEnds reads the positions of the ends of the lines of script.
func (h *heap) lineEnds(script uint64) []int32 {
	if le, ok := h.field(script, h.l.ScriptLineEnds); ok && h.is(le, h.l.TypeFixedArray) {
		if n, ok := h.field(le, h.l.FixedArrayLength); ok && h.isSmi(n) && h.smi(n) > 0 && h.smi(n) <= maxLines {
			count := h.smi(n)
			b := make([]byte, 8*count)
			if k, err := h.mem.ReadAt(b, le-uint64(h.l.HeapObjectTag)+uint64(h.l.FixedArrayData)); err == nil && k == len(b) {
				ends := make([]int32, count)
				for i := range ends {
					v := binary.LittleEndian.Uint64(b[8*i:])
					if !h.isSmi(v) {
						return nil
					}
					ends[i] = int32(h.smi(v))
				}
				return ends
			}
		}
	}
	// V8 computes line ends when it first needs them (an error's
	// stack): count the source's newlines instead, when it is a
	// sequential one-byte string (node's scripts from files are).
	src, ok := h.field(script, h.l.ScriptSource)
	if !ok {
		return nil
	}
	t, ok := h.typeOf(src)
	if !ok || int64(t) >= h.l.FirstNonstringType || int64(t)&h.l.StringRepresentationMask != h.l.SeqStringTag ||
		int64(t)&h.l.StringEncodingMask != h.l.OneByteStringTag {
		return nil
	}
	var lb [4]byte
	if n, err := h.mem.ReadAt(lb[:], src-uint64(h.l.HeapObjectTag)+uint64(h.l.StringLength)); err != nil || n != 4 {
		return nil
	}
	length := int64(int32(binary.LittleEndian.Uint32(lb[:])))
	if length <= 0 || length > maxSource {
		return nil
	}
	b := make([]byte, length)
	if k, err := h.mem.ReadAt(b, src-uint64(h.l.HeapObjectTag)+uint64(h.l.SeqOneByteChars)); err != nil || k != len(b) {
		return nil
	}
	var ends []int32
	for i, c := range b {
		if c == '\n' && len(ends) < maxLines {
			ends = append(ends, int32(i))
		}
	}
	return append(ends, int32(length))
}
