package nodev8

import (
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
// right, against a real node of each (the tests): the ScopeInfo a
// function's name is found in is laid out by release, with no constant
// describing it, and the walk assumes full 8-byte pointers (no pointer
// compression, as node builds V8).
var Known = [][2]int{{11, 3}}

// ErrNoMetadata is returned for a binary without the v8dbg_* constants:
// not V8, or built without them.
var ErrNoMetadata = errors.New("no V8 debug metadata (v8dbg_* symbols)")

// ErrUnknownVersion is wrapped by the error for a V8 release not in Known.
var ErrUnknownVersion = errors.New("a V8 release cpuwhy does not know")

// maxV8Symbols bounds the v8dbg_* symbols looked at: node 20 has about
// 1,100.
const maxV8Symbols = 1 << 14

// ReadLayout reads the layout from the dynamic symbols of a V8 binary
// (node, libnode.so) and the data of its sections.
func ReadLayout(e *elf.File) (Layout, error) {
	syms, err := e.DynamicSymbols()
	if err != nil || len(syms) == 0 {
		if syms, err = e.Symbols(); err != nil {
			return Layout{}, ErrNoMetadata
		}
	}
	values := map[string]int64{}
	read := func(s elf.Symbol) (int64, error) {
		if int(s.Section) >= len(e.Sections) || s.Section == elf.SHN_UNDEF {
			return 0, fmt.Errorf("symbol %s in no section", s.Name)
		}
		sec := e.Sections[s.Section]
		if s.Value < sec.Addr || s.Value-sec.Addr > sec.Size || sec.Size-(s.Value-sec.Addr) < 4 {
			return 0, fmt.Errorf("symbol %s outside its section", s.Name)
		}
		if sec.Type == elf.SHT_NOBITS {
			return 0, nil // .bss: the constant is 0
		}
		var b [4]byte
		if _, err := sec.ReadAt(b[:], int64(s.Value-sec.Addr)); err != nil {
			return 0, fmt.Errorf("reading %s: %w", s.Name, err)
		}
		return int64(int32(binary.LittleEndian.Uint32(b[:]))), nil
	}
	var major, minor *elf.Symbol
	for i := range syms {
		s := &syms[i]
		switch {
		case s.Name == "_ZN2v88internal7Version6major_E":
			major = s
		case s.Name == "_ZN2v88internal7Version6minor_E":
			minor = s
		case strings.HasPrefix(s.Name, "v8dbg_"):
			if len(values) >= maxV8Symbols {
				continue
			}
			v, err := read(*s)
			if err != nil {
				return Layout{}, err
			}
			values[strings.TrimPrefix(s.Name, "v8dbg_")] = v
		}
	}
	if len(values) == 0 {
		return Layout{}, ErrNoMetadata
	}
	var l Layout
	if major == nil || minor == nil {
		return Layout{}, errors.New("no V8 version (v8::internal::Version) in the binary")
	}
	ma, err := read(*major)
	if err != nil {
		return Layout{}, err
	}
	mi, err := read(*minor)
	if err != nil {
		return Layout{}, err
	}
	l.Major, l.Minor = int(ma), int(mi)
	if err := l.fill(values); err != nil {
		return l, err
	}
	return l, l.check()
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
	return nil
}

func knownList() string {
	var s []string
	for _, k := range Known {
		s = append(s, fmt.Sprintf("%d.%d", k[0], k[1]))
	}
	return strings.Join(s, ", ")
}
