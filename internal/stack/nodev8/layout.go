package nodev8

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// Layout is what V8 says of its own objects and frames in the v8dbg_*
// constants its build leaves in the binary (tools/gen-postmortem-metadata.py,
// what llnode and the OpenTelemetry profiler read): tags, instance types,
// and the offsets of the fields walked from a frame to a function's name.
// Each field is filled from the constant named in its tag.
type Layout struct {
	Major, Minor int // V8's version (v8::internal::Version)

	PointerSize       int64 `v8dbg:"SystemPointerSize"`
	SmiTag            int64 `v8dbg:"SmiTag"`
	SmiTagMask        int64 `v8dbg:"SmiTagMask"`
	SmiShiftSize      int64 `v8dbg:"SmiShiftSize"`
	HeapObjectTag     int64 `v8dbg:"HeapObjectTag"`
	HeapObjectTagMask int64 `v8dbg:"HeapObjectTagMask"`

	FirstNonstringType       int64 `v8dbg:"FirstNonstringType"`
	StringEncodingMask       int64 `v8dbg:"StringEncodingMask"`
	OneByteStringTag         int64 `v8dbg:"OneByteStringTag"`
	StringRepresentationMask int64 `v8dbg:"StringRepresentationMask"`
	SeqStringTag             int64 `v8dbg:"SeqStringTag"`
	ConsStringTag            int64 `v8dbg:"ConsStringTag"`
	ThinStringTag            int64 `v8dbg:"ThinStringTag"`

	FPFunction    int64 `v8dbg:"off_fp_function"`
	FPContextType int64 `v8dbg:"off_fp_context_or_frame_type"`

	TypeJSFunction int64 `v8dbg:"type_JSFunction__JS_FUNCTION_TYPE"`
	TypeSFI        int64 `v8dbg:"type_SharedFunctionInfo__SHARED_FUNCTION_INFO_TYPE"`
	TypeScopeInfo  int64 `v8dbg:"type_ScopeInfo__SCOPE_INFO_TYPE"`
	TypeScript     int64 `v8dbg:"type_Script__SCRIPT_TYPE"`
	TypeFixedArray int64 `v8dbg:"type_FixedArray__FIXED_ARRAY_TYPE"`

	HeapObjectMap    int64 `v8dbg:"class_HeapObject__map__Map"`
	MapInstanceType  int64 `v8dbg:"class_Map__instance_type__uint16_t"`
	JSFunctionShared int64 `v8dbg:"class_JSFunction__shared__SharedFunctionInfo"`
	SFINameOrScope   int64 `v8dbg:"class_SharedFunctionInfo__name_or_scope_info__Object"`
	SFIScript        int64 `v8dbg:"class_SharedFunctionInfo__script_or_debug_info__HeapObject"`
	StringLength     int64 `v8dbg:"class_String__length__int32_t"`
	SeqOneByteChars  int64 `v8dbg:"class_SeqOneByteString__chars__char"`
	SeqTwoByteChars  int64 `v8dbg:"class_SeqTwoByteString__chars__char"`
	ConsFirst        int64 `v8dbg:"class_ConsString__first__String"`
	ConsSecond       int64 `v8dbg:"class_ConsString__second__String"`
	ThinActual       int64 `v8dbg:"class_ThinString__actual__String"`
	ScriptName       int64 `v8dbg:"class_Script__name__Object"`
	ScriptLineEnds   int64 `v8dbg:"class_Script__line_ends__Object"`
	ScriptSource     int64 `v8dbg:"class_Script__source__Object"`
	FixedArrayLength int64 `v8dbg:"class_FixedArrayBase__length__SMI"`
	FixedArrayData   int64 `v8dbg:"class_FixedArray__data__uintptr_t"`

	ScopeInfoFirstVars      int64 `v8dbg:"scopeinfo_idx_first_vars"`
	ScopeInfoNContextLocals int64 `v8dbg:"scopeinfo_idx_ncontextlocals"`
}

// Known is the V8 releases whose objects this package was checked to read
// right, against a real node of each: the ScopeInfo a function's name is
// found in is laid out by release, with no constant describing it, and
// the walk assumes full 8-byte pointers (no pointer compression, as node
// builds V8). 11.3 is node 20's, which the tests run; 10.2 is Debian 12's
// node 18 (V8 in libnode.so.108), checked by hand on the nodehot
// scenario (settleAccounts (ledger.js:7), tick (ledger.js:23)).
var Known = [][2]int{{10, 2}, {11, 3}}

// ErrNoMetadata is returned for a binary without the v8dbg_* constants:
// not V8, or built without them.
var ErrNoMetadata = errors.New("no V8 debug metadata (v8dbg_* symbols)")

// ErrUnknownVersion is wrapped by the error for a V8 release not in Known.
var ErrUnknownVersion = errors.New("a V8 release cpuwhy does not know")

// maxV8Symbols bounds the v8dbg_* symbols looked at: node 20 has about
// 1,100.
const maxV8Symbols = 1 << 14

// ReadLayout reads the layout from the dynamic symbols of a V8 binary
// (node, libnode.so) and the data of its sections. The symbol table is
// scanned in place for the few names wanted: node exports 75,000
// symbols, and making each one a Go string (debug/elf's Symbols) cost 85
// ms a process.
func ReadLayout(e *elf.File) (Layout, error) {
	if e.Class != elf.ELFCLASS64 || e.Data != elf.ELFDATA2LSB {
		return Layout{}, ErrNoMetadata
	}
	syms, strs, err := symbolTable(e)
	if err != nil {
		return Layout{}, err
	}
	read := func(name string, shndx uint16, value uint64) (int64, error) {
		if int(shndx) >= len(e.Sections) || shndx == uint16(elf.SHN_UNDEF) {
			return 0, fmt.Errorf("symbol %s in no section", name)
		}
		sec := e.Sections[shndx]
		if value < sec.Addr || value-sec.Addr > sec.Size || sec.Size-(value-sec.Addr) < 4 {
			return 0, fmt.Errorf("symbol %s outside its section", name)
		}
		if sec.Type == elf.SHT_NOBITS {
			return 0, nil // .bss: the constant is 0
		}
		var b [4]byte
		if _, err := sec.ReadAt(b[:], int64(value-sec.Addr)); err != nil {
			return 0, fmt.Errorf("reading %s: %w", name, err)
		}
		return int64(int32(binary.LittleEndian.Uint32(b[:]))), nil
	}
	values := map[string]int64{}
	version := map[string]int64{}
	const symSize = 24 // Elf64_Sym
	for off := symSize; off+symSize <= len(syms); off += symSize {
		nameOff := binary.LittleEndian.Uint32(syms[off:])
		if int64(nameOff) >= int64(len(strs)) {
			continue
		}
		rest := strs[nameOff:]
		if len(rest) < 6 || rest[0] != 'v' && rest[0] != '_' || rest[1] != '8' && rest[1] != 'Z' {
			continue // most symbols, told apart by two bytes
		}
		var name string
		switch {
		case bytes.HasPrefix(rest, []byte("v8dbg_")):
			if len(values) >= maxV8Symbols {
				continue
			}
			name = cString(rest)
		case bytes.HasPrefix(rest, []byte(versionPrefix)):
			name = cString(rest)
		default:
			continue
		}
		v, err := read(name, binary.LittleEndian.Uint16(syms[off+6:]), binary.LittleEndian.Uint64(syms[off+8:]))
		if err != nil {
			return Layout{}, err
		}
		if strings.HasPrefix(name, "v8dbg_") {
			values[strings.TrimPrefix(name, "v8dbg_")] = v
		} else {
			version[name] = v
		}
	}
	if len(values) == 0 {
		return Layout{}, ErrNoMetadata
	}
	ma, okMa := version[versionPrefix+"6major_E"]
	mi, okMi := version[versionPrefix+"6minor_E"]
	if !okMa || !okMi {
		return Layout{}, errors.New("no V8 version (v8::internal::Version) in the binary")
	}
	l := Layout{Major: int(ma), Minor: int(mi)}
	if err := l.fill(values); err != nil {
		return l, err
	}
	return l, l.check()
}

// versionPrefix begins the mangled names of v8::internal::Version's
// fields (major_, minor_, ...).
const versionPrefix = "_ZN2v88internal7Version"

// maxSymbolTable bounds the symbol and string tables read: node's are 1.8
// and 4 MiB.
const maxSymbolTable = 64 << 20

// symbolTable returns the dynamic symbol table and its strings, or the
// static ones when there are none.
func symbolTable(e *elf.File) (syms, strs []byte, err error) {
	for _, names := range [][2]string{{".dynsym", ".dynstr"}, {".symtab", ".strtab"}} {
		ss, st := e.Section(names[0]), e.Section(names[1])
		if ss == nil || st == nil || ss.Type == elf.SHT_NOBITS || st.Type == elf.SHT_NOBITS {
			continue
		}
		if ss.Size > maxSymbolTable || st.Size > maxSymbolTable {
			return nil, nil, fmt.Errorf("a symbol table of %d bytes", max(ss.Size, st.Size))
		}
		if syms, err = ss.Data(); err != nil {
			return nil, nil, fmt.Errorf("reading %s: %w", names[0], err)
		}
		if strs, err = st.Data(); err != nil {
			return nil, nil, fmt.Errorf("reading %s: %w", names[1], err)
		}
		return syms, strs, nil
	}
	return nil, nil, ErrNoMetadata
}

// cString is the NUL-ended string at the start of b, at most 256 bytes.
func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b[:min(len(b), 256)])
}

// fill sets each tagged field from values.
func (l *Layout) fill(values map[string]int64) error {
	v := reflect.ValueOf(l).Elem()
	t := v.Type()
	var missing []string
	for i := 0; i < t.NumField(); i++ {
		name := t.Field(i).Tag.Get("v8dbg")
		if name == "" {
			continue
		}
		x, ok := values[name]
		if !ok {
			missing = append(missing, "v8dbg_"+name)
			continue
		}
		v.Field(i).SetInt(x)
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: V8 %d.%d lacks %s", ErrNoMetadata, l.Major, l.Minor, strings.Join(missing, ", "))
	}
	return nil
}

// check refuses a layout this package cannot read: another release, or
// one whose constants contradict what the walk assumes.
func (l *Layout) check() error {
	known := false
	for _, k := range Known {
		known = known || k == [2]int{l.Major, l.Minor}
	}
	if !known {
		return fmt.Errorf("%w: %d.%d (known: %s)", ErrUnknownVersion, l.Major, l.Minor, knownList())
	}
	switch {
	case l.PointerSize != 8:
		return fmt.Errorf("V8 %d.%d with %d-byte pointers: only 8 is read", l.Major, l.Minor, l.PointerSize)
	case l.HeapObjectTag != 1 || l.HeapObjectTagMask != 3 || l.SmiTag != 0 || l.SmiTagMask != 1:
		return fmt.Errorf("V8 %d.%d tags objects unlike any release read", l.Major, l.Minor)
	case l.JSFunctionShared%8 != 0 || l.SFINameOrScope%8 != 0:
		// 4-byte fields: pointer compression, not read here.
		return fmt.Errorf("V8 %d.%d compresses its pointers: not read", l.Major, l.Minor)
	}
	// The offsets index objects read whole and frames read as one span:
	// a binary that says otherwise is not believed.
	for _, off := range []int64{l.HeapObjectMap, l.MapInstanceType, l.JSFunctionShared, l.SFINameOrScope, l.SFIScript,
		l.StringLength, l.SeqOneByteChars, l.SeqTwoByteChars, l.ConsFirst, l.ConsSecond, l.ThinActual,
		l.ScriptName, l.ScriptLineEnds, l.ScriptSource, l.FixedArrayLength, l.FixedArrayData} {
		if off < 0 || off > maxFieldOffset {
			return fmt.Errorf("V8 %d.%d: a field offset of %d", l.Major, l.Minor, off)
		}
	}
	for _, off := range []int64{l.FPFunction, l.FPContextType} {
		if off < -maxFrameOffset || off > maxFrameOffset || off%8 != 0 {
			return fmt.Errorf("V8 %d.%d: a frame offset of %d", l.Major, l.Minor, off)
		}
	}
	if l.ScopeInfoFirstVars < 0 || l.ScopeInfoFirstVars >= scopeInfoSlots || l.ScopeInfoNContextLocals < 0 || l.ScopeInfoNContextLocals >= scopeInfoSlots {
		return fmt.Errorf("V8 %d.%d: ScopeInfo indexes %d, %d", l.Major, l.Minor, l.ScopeInfoFirstVars, l.ScopeInfoNContextLocals)
	}
	return nil
}

// maxFieldOffset and maxFrameOffset bound the offsets believed: V8's
// fields read here are within its objects' first words, and a frame's
// fixed slots within a few words of its frame pointer.
const (
	maxFieldOffset = 240
	maxFrameOffset = 64
)

func knownList() string {
	var s []string
	for _, k := range Known {
		s = append(s, fmt.Sprintf("%d.%d", k[0], k[1]))
	}
	return strings.Join(s, ", ")
}
