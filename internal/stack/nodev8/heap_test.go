package nodev8

import (
	"encoding/binary"
	"errors"
	"testing"
	"unicode/utf8"
)

// node20 is the layout of node 20 (V8 11.3), as ReadLayout reads it, for
// tests that build objects by hand.
var node20 = Layout{
	Major: 11, Minor: 3, PointerSize: 8, SmiTag: 0, SmiTagMask: 1, SmiShiftSize: 31, HeapObjectTag: 1, HeapObjectTagMask: 3,
	FirstNonstringType: 128, StringEncodingMask: 8, OneByteStringTag: 8, StringRepresentationMask: 7,
	SeqStringTag: 0, ConsStringTag: 1, ThinStringTag: 5,
	FPFunction: -16, FPContextType: -8,
	TypeJSFunction: 2066, TypeSFI: 262, TypeScopeInfo: 261, TypeScript: 167, TypeFixedArray: 175,
	HeapObjectMap: 0, MapInstanceType: 12, JSFunctionShared: 24, SFINameOrScope: 16, SFIScript: 32,
	StringLength: 12, SeqOneByteChars: 16, SeqTwoByteChars: 16, ConsFirst: 16, ConsSecond: 24, ThinActual: 16,
	ScriptName: 16, ScriptLineEnds: 56, ScriptSource: 8, FixedArrayLength: 8, FixedArrayData: 16,
	ScopeInfoFirstVars: 3, ScopeInfoNContextLocals: 2,
}

// flat is memory at base, the rest unreadable.
type flat struct {
	base uint64
	b    []byte
}

var errUnmapped = errors.New("unmapped")

func (m flat) ReadAt(p []byte, addr uint64) (int, error) {
	if addr < m.base || addr-m.base > uint64(len(m.b)) || uint64(len(p)) > uint64(len(m.b))-(addr-m.base) {
		return 0, errUnmapped
	}
	return copy(p, m.b[addr-m.base:]), nil
}

// builder lays out V8 objects by hand in a flat memory.
type builder struct {
	m    flat
	next uint64
	maps map[int64]uint64
}

func newBuilder() *builder {
	return &builder{m: flat{base: 0x10000, b: make([]byte, 1<<16)}, next: 0x10000, maps: map[int64]uint64{}}
}

func (b *builder) alloc(n int) uint64 {
	a := b.next
	b.next += uint64((n + 15) &^ 15)
	return a
}

func (b *builder) put(addr, v uint64) { binary.LittleEndian.PutUint64(b.m.b[addr-b.m.base:], v) }

// object makes an object of instance type typ and size bytes, and returns
// its tagged pointer.
func (b *builder) object(typ int64, size int) uint64 {
	m, ok := b.maps[typ]
	if !ok {
		a := b.alloc(16)
		binary.LittleEndian.PutUint16(b.m.b[a-b.m.base+uint64(node20.MapInstanceType):], uint16(typ))
		m = a + 1
		b.maps[typ] = m
	}
	a := b.alloc(size)
	b.put(a, m)
	return a + 1
}

func (b *builder) str(s string) uint64 {
	v := b.object(node20.OneByteStringTag, 16+len(s))
	binary.LittleEndian.PutUint32(b.m.b[v-1-b.m.base+uint64(node20.StringLength):], uint32(len(s)))
	copy(b.m.b[v-1-b.m.base+uint64(node20.SeqOneByteChars):], s)
	return v
}

func smi(v int64) uint64 { return uint64(v) << 32 }

// TestFunction reads a function laid out as node 20 lays it out: its
// name in its ScopeInfo after two context locals, its script's name, and
// its line from the source's newlines.
func TestFunction(t *testing.T) {
	b := newBuilder()
	src := b.str("'use strict';\n\nfunction settle(n) {\n  return n;\n}\n")
	script := b.object(node20.TypeScript, 64)
	b.put(script-1+uint64(node20.ScriptName), b.str("/app/ledger.js"))
	b.put(script-1+uint64(node20.ScriptSource), src)
	b.put(script-1+uint64(node20.ScriptLineEnds), smi(0)) // not computed
	si := b.object(node20.TypeScopeInfo, 8+8*scopeInfoSlots)
	slot := func(i int, v uint64) { b.put(si-1+8+8*uint64(i), v) }
	slot(int(node20.ScopeInfoNContextLocals), smi(2))
	for i := 0; i < 4; i++ {
		slot(int(node20.ScopeInfoFirstVars)+i, smi(int64(i)))
	}
	first := int(node20.ScopeInfoFirstVars) + 4
	slot(first, b.str("settle"))
	slot(first+1, smi(24)) // the start of "function settle"
	slot(first+2, smi(52))
	sfi := b.object(node20.TypeSFI, 48)
	b.put(sfi-1+uint64(node20.SFINameOrScope), si)
	b.put(sfi-1+uint64(node20.SFIScript), script)
	fn := b.object(node20.TypeJSFunction, 48)
	b.put(fn-1+uint64(node20.JSFunctionShared), sfi)

	l := node20
	h := newHeap(&l, b.m)
	f, ok := h.function(fn)
	if !ok || f != (Func{Name: "settle", File: "/app/ledger.js", Line: 3}) {
		t.Errorf("function = %+v, %v; want settle in /app/ledger.js line 3", f, ok)
	}
	// The same function again comes from the cache; another type is
	// refused.
	if f2, _ := h.function(fn); f2 != f {
		t.Errorf("cached function = %+v", f2)
	}
	if _, ok := h.function(sfi); ok {
		t.Error("a SharedFunctionInfo was read as a JSFunction")
	}
	if _, ok := h.function(fn &^ 1); ok {
		t.Error("an untagged pointer was read")
	}
}

// FuzzHeap reads a function from random memory: it must end, and what
// it returns be bounded and valid UTF-8.
func FuzzHeap(f *testing.F) {
	f.Add([]byte{1, 0, 1, 0, 0, 0, 0, 0}, uint64(0x10001))
	f.Fuzz(func(t *testing.T, mem []byte, fn uint64) {
		l := node20
		h := newHeap(&l, flat{base: 0x10000, b: mem})
		got, ok := h.function(fn)
		if !ok {
			return
		}
		for _, s := range []string{got.Name, got.File} {
			if len(s) > 3*maxName || !utf8.ValidString(s) {
				t.Fatalf("name of %d bytes, valid %v", len(s), utf8.ValidString(s))
			}
		}
	})
}
