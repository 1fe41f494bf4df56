package python

import (
	"encoding/binary"
	"fmt"
	"testing"
)

// fakeMemory is a target's memory made of one block at base.
type fakeMemory struct {
	base uint64
	data []byte
}

func (m fakeMemory) ReadAt(p []byte, addr uint64) (int, error) {
	if addr < m.base || addr-m.base > uint64(len(m.data)) || uint64(len(p)) > uint64(len(m.data))-(addr-m.base) {
		return 0, fmt.Errorf("reading %d bytes at %#x: unmapped", len(p), addr)
	}
	return copy(p, m.data[addr-m.base:]), nil
}

// Where image puts things, from its base.
const (
	imgBase              = 0x100000
	imgCodeType          = imgBase + 0x100
	imgStrType           = imgBase + 0x200
	imgBytesType         = imgBase + 0x300
	imgRuntime           = imgBase + 0x1000
	imgInterp            = imgBase + 0x3000
	imgThread            = imgBase + 0x5000
	imgCFrame            = imgBase + 0x6000
	imgFrame             = imgBase + 0x7000
	imgCode              = imgBase + 0x9000
	imgName              = imgBase + 0xa000
	imgFile              = imgBase + 0xb000
	imgTable             = imgBase + 0xc000
	imgSize              = 0x10000
	imgNative            = 77
	imgFirst             = 10
	imgPthread           = 0xdead0000
	imgInstr             = 3 // the instruction the frame runs, in code units
	imgName_, imgFile_   = "Indexer.rebuild", "index.py"
	imgLnotabLine        = imgFirst + 2
	imgLocationsLineDiff = 2
)

// image builds, in layout l, the memory of an interpreter with one
// thread running one frame of Indexer.rebuild (index.py:12).
func image(l Layout) (fakeMemory, reader) {
	b := make([]byte, imgSize)
	put := func(addr uint64, v uint64) { binary.LittleEndian.PutUint64(b[addr-imgBase:], v) }
	put32 := func(addr uint64, v uint32) { binary.LittleEndian.PutUint32(b[addr-imgBase:], v) }
	put(imgRuntime+uint64(l.RuntimeInterpretersHead), imgInterp)
	put(imgInterp+uint64(l.InterpThreadsHead), imgThread)
	put(imgThread+uint64(l.ThreadInterp), imgInterp)
	put(imgThread+uint64(l.ThreadID), imgPthread)
	if l.ThreadNativeID >= 0 {
		put(imgThread+uint64(l.ThreadNativeID), imgNative)
	}
	if l.CFrameCurrent >= 0 {
		put(imgThread+uint64(l.ThreadFrame), imgCFrame)
		put(imgCFrame+uint64(l.CFrameCurrent), imgFrame)
	} else {
		put(imgThread+uint64(l.ThreadFrame), imgFrame)
	}
	put(imgFrame+uint64(l.FrameCode), imgCode)
	var table []byte
	switch l.linetable() {
	case locations:
		put(imgFrame+uint64(l.FrameInstr), imgCode+uint64(l.CodeAdaptive)+2*imgInstr)
		b[imgFrame-imgBase+uint64(l.FrameOwner)] = 0
		if l.FrameIsEntry >= 0 {
			b[imgFrame-imgBase+uint64(l.FrameIsEntry)] = 1
		}
		// Two entries of 3 code units, no columns (code 13): +0, +2 lines.
		table = []byte{0x80 | 13<<3 | 2, 0, 0x80 | 13<<3 | 2, 4}
	default:
		put32(imgFrame+uint64(l.FrameInstr), 2*imgInstr/(1+boolInt(l.Minor == 10)))
		// Bytes 0-5 at the first line, 6- two lines on.
		table = []byte{6, 2} // lnotab: at byte 6, +2
		if l.linetable() == linetable310 {
			table = []byte{6, 0, 6, 2} // 6 bytes +0, 6 bytes +2
		}
	}
	put(imgCode+uint64(l.ObjectType), imgCodeType)
	name := l.CodeName
	if l.CodeQualname >= 0 {
		name = l.CodeQualname
	}
	put(imgCode+uint64(name), imgName)
	put(imgCode+uint64(l.CodeFilename), imgFile)
	put(imgCode+uint64(l.CodeLineTable), imgTable)
	put32(imgCode+uint64(l.CodeFirstLine), imgFirst)
	for _, s := range []struct {
		at  uint64
		str string
	}{{imgName, imgName_}, {imgFile, imgFile_}} {
		put(s.at+uint64(l.ObjectType), imgStrType)
		put(s.at+uint64(l.StrLength), uint64(len(s.str)))
		put32(s.at+uint64(l.StrState), 1<<2|1<<5|1<<6) // kind 1, compact, ascii
		copy(b[s.at-imgBase+uint64(l.StrASCIIData):], s.str)
	}
	put(imgTable+uint64(l.ObjectType), imgBytesType)
	put(imgTable+uint64(l.BytesSize), uint64(len(table)))
	copy(b[imgTable-imgBase+uint64(l.BytesData):], table)
	m := fakeMemory{base: imgBase, data: b}
	return m, reader{mem: m, l: l, types: objects{code: imgCodeType, str: imgStrType, bytes: imgBytesType}}
}

func boolInt(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// walk reads everything of the interpreter in r that Expand reads, and
// names its frames.
func walk(r *reader) ([]string, error) {
	ts, err := r.threads(imgRuntime, nil)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, t := range ts {
		fs, _, err := r.frames(t.addr, t.native, nil)
		if err != nil {
			return out, err
		}
		for _, f := range fs {
			k, err := r.codeHead(f.code)
			if err != nil {
				return out, err
			}
			c, err := r.code(k)
			if err != nil {
				return out, err
			}
			out = append(out, fmt.Sprintf("%s (%s:%d)", c.name, c.file, lineOf(r.l.linetable(), c.table, c.first, f.at)))
		}
	}
	return out, nil
}

// TestImage reads an interpreter built in each layout.
func TestImage(t *testing.T) {
	for minor, l := range layouts {
		_, r := image(l)
		got, err := walk(&r)
		want := fmt.Sprintf("%s (%s:%d)", imgName_, imgFile_, imgFirst+2)
		if err != nil || len(got) != 1 || got[0] != want {
			t.Errorf("3.%d: %q, %v; want [%s]", minor, got, err, want)
		}
	}
}

// TestImageDamaged: an interpreter whose objects are not what they must
// be yields an error, never a name.
func TestImageDamaged(t *testing.T) {
	l := layouts[12]
	for _, c := range []struct {
		name string
		at   uint64
		val  uint64
	}{
		{"code of another type", imgCode + uint64(l.ObjectType), imgStrType},
		{"name of another type", imgName + uint64(l.ObjectType), imgBytesType},
		{"name too long", imgName + uint64(l.StrLength), 1 << 40},
		{"name with NULs", imgName + uint64(l.StrLength), 100},
		{"table too long", imgTable + uint64(l.BytesSize), 1 << 20},
		{"thread of another interpreter", imgThread + uint64(l.ThreadInterp), imgThread},
		{"frame looping", imgFrame + uint64(l.FrameBack), imgFrame},
		{"frame out of memory", imgCFrame + uint64(l.CFrameCurrent), 0x42},
		{"instruction outside its code", imgFrame + uint64(l.FrameInstr), 1 << 60},
	} {
		m, r := image(l)
		binary.LittleEndian.PutUint64(m.data[c.at-imgBase:], c.val)
		if got, err := walk(&r); err == nil {
			t.Errorf("%s: read %q, no error", c.name, got)
		}
	}
}

// TestDebugOffsets: 3.13's _Py_DebugOffsets that agree with the layout
// pass, one field moved fails (the live ones are checked at every
// attach of the live tests).
func TestDebugOffsets(t *testing.T) {
	l := layouts[13]
	d := make([]byte, debugOffsetsSize)
	const gilAt = 7744 // where the interpreter keeps its own GIL
	binary.LittleEndian.PutUint64(d[8*15:], gilAt)
	for _, o := range debugOffsets {
		v := uint64(o.of(l))
		if o.from != 0 {
			v += gilAt
		}
		binary.LittleEndian.PutUint64(d[8*o.index:], v)
	}
	if err := checkDebugOffsets(d, l); err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint64(d[8*debugOffsets[3].index:], 999)
	if err := checkDebugOffsets(d, l); err == nil {
		t.Error("a moved field passed")
	}
}
