package hotspot

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/cpuwhy/cpuwhy/internal/objfile"
	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/unwind"
)

// HotSpot describes its own structures for debuggers (the serviceability
// agent) in tables libjvm.so exports: gHotSpotVMStructs lists fields
// (type, field, offset), gHotSpotVMTypes types (name, size), and the
// gHotSpotVMStructEntry*Offset and *ArrayStride globals say how an entry
// of each is laid out; the JVM fills them in when it starts. From them an
// interpreted frame's method is named: the interpreter keeps the Method*
// it runs at a fixed place below its frame pointer
// (frame::interpreter_frame_method_offset, -3 words on x86-64 since JDK
// 8), and
//
//	Method -> _constMethod -> _constants (ConstantPool) -> _pool_holder (Klass) -> _name (Symbol)
//	       -> _constMethod -> _name_index, an index into the constant pool's Symbol*s
//
// give "pkg/Class" and "method".

// interpreterMethodOffset is where, from an interpreted frame's frame
// pointer, the interpreter keeps its Method* on x86-64.
const interpreterMethodOffset = -3 * 8

// Limits on what is read of the tables and the structures they describe.
const (
	maxVMEntries = 1 << 13 // entries of a table (JDK 17: about 3,000 fields, 1,500 types)
	maxVMStride  = 256     // bytes of one entry
	maxVMName    = 128     // bytes of a type's or a field's name
	maxSymbol    = 1024    // bytes of a class's or a method's name
	maxConstPool = 1 << 16 // entries of a constant pool (u2 indexes)
	maxMethods   = 1 << 14 // names kept, by Method*
)

// vmLayout is what is needed of HotSpot's tables.
type vmLayout struct {
	methodConstMethod int64 // Method::_constMethod
	constMethodConsts int64 // ConstMethod::_constants
	constMethodName   int64 // ConstMethod::_name_index (u2)
	constPoolHolder   int64 // ConstantPool::_pool_holder
	constPoolLength   int64 // ConstantPool::_length (int)
	constPoolSize     int64 // sizeof(ConstantPool): its entries follow it
	klassName         int64 // Klass::_name
	symbolLength      int64 // Symbol::_length (u2)
	symbolBody        int64 // Symbol::_body

	// CodeBlob's fields, for the frame size of a compiled method; -1
	// when the JVM does not describe them (its compiled frames are then
	// not unwound).
	blobCodeBegin, blobCodeEnd, blobFrameSize, blobFrameComplete int64

	// The interpreter's code, [interpStart, interpEnd): the buffer of
	// the stub queue AbstractInterpreter::_code. 0, 0 when not found.
	interpStart, interpEnd uint64
}

// maxInterpreter bounds the interpreter's code believed (JDK 17: 270 KB).
const maxInterpreter = 64 << 20

// readVMLayout reads HotSpot's tables from the memory of a JVM, the
// addresses of their globals from libjvm.so (e), loaded at bias.
func readVMLayout(e *elf.File, bias uint64, mem unwind.Memory) (*vmLayout, error) {
	syms, err := e.DynamicSymbols()
	if err != nil {
		return nil, fmt.Errorf("libjvm.so's symbols: %w", err)
	}
	addr := map[string]uint64{}
	for _, s := range syms {
		if strings.HasPrefix(s.Name, "gHotSpotVM") {
			addr[s.Name] = s.Value + bias
		}
	}
	r := vmReader{mem: mem}
	global := func(name string) uint64 {
		a, ok := addr[name]
		if !ok {
			r.err = errors.Join(r.err, fmt.Errorf("libjvm.so exports no %s", name))
			return 0
		}
		return r.word(a)
	}
	structs := global("gHotSpotVMStructs")
	sStride := global("gHotSpotVMStructEntryArrayStride")
	sType := global("gHotSpotVMStructEntryTypeNameOffset")
	sField := global("gHotSpotVMStructEntryFieldNameOffset")
	sOffset := global("gHotSpotVMStructEntryOffsetOffset")
	sStatic := global("gHotSpotVMStructEntryIsStaticOffset")
	sAddress := global("gHotSpotVMStructEntryAddressOffset")
	types := global("gHotSpotVMTypes")
	tStride := global("gHotSpotVMTypeEntryArrayStride")
	tType := global("gHotSpotVMTypeEntryTypeNameOffset")
	tSize := global("gHotSpotVMTypeEntrySizeOffset")
	if r.err != nil {
		return nil, r.err
	}
	for _, v := range []uint64{sType, sField, sOffset, sStatic, sAddress, tType, tSize} {
		if v+8 > maxVMStride {
			return nil, fmt.Errorf("a VMStructs entry offset of %d", v)
		}
	}
	if sStride < 8 || sStride > maxVMStride || tStride < 8 || tStride > maxVMStride || structs == 0 || types == 0 {
		return nil, errors.New("HotSpot's VMStructs tables are not set up (the JVM is starting?)")
	}
	l := &vmLayout{}
	fields := map[[2]string]*int64{
		{"Method", "_constMethod"}:       &l.methodConstMethod,
		{"ConstMethod", "_constants"}:    &l.constMethodConsts,
		{"ConstMethod", "_name_index"}:   &l.constMethodName,
		{"ConstantPool", "_pool_holder"}: &l.constPoolHolder,
		{"ConstantPool", "_length"}:      &l.constPoolLength,
		{"Klass", "_name"}:               &l.klassName,
		{"Symbol", "_length"}:            &l.symbolLength,
		{"Symbol", "_body[0]"}:           &l.symbolBody,
	}
	// A compiled method's blob: a help, not a need.
	l.blobCodeBegin, l.blobCodeEnd, l.blobFrameSize, l.blobFrameComplete = -1, -1, -1, -1
	blob := map[[2]string]*int64{{"CodeBlob", "_code_begin"}: &l.blobCodeBegin, {"CodeBlob", "_code_end"}: &l.blobCodeEnd,
		{"CodeBlob", "_frame_size"}: &l.blobFrameSize, {"CodeBlob", "_frame_complete_offset"}: &l.blobFrameComplete}
	// The interpreter's code: a static field and two of StubQueue's.
	var interpCode uint64
	stubBuffer, bufferLimit := int64(-1), int64(-1)
	queue := map[[2]string]*int64{{"StubQueue", "_stub_buffer"}: &stubBuffer, {"StubQueue", "_buffer_limit"}: &bufferLimit}
	found := 0
	err = r.entries(structs, sStride, func(e []byte) bool {
		typeName := r.cstr(binary.LittleEndian.Uint64(e[sType:]))
		if typeName == "" {
			return false // the table's end
		}
		key := [2]string{typeName, r.cstr(binary.LittleEndian.Uint64(e[sField:]))}
		if p, ok := fields[key]; ok {
			*p = int64(binary.LittleEndian.Uint64(e[sOffset:]))
			found++
		}
		if p, ok := queue[key]; ok {
			*p = int64(binary.LittleEndian.Uint64(e[sOffset:]))
		}
		if p, ok := blob[key]; ok {
			*p = int64(binary.LittleEndian.Uint64(e[sOffset:]))
		}
		if key == [2]string{"AbstractInterpreter", "_code"} && binary.LittleEndian.Uint32(e[sStatic:]) != 0 {
			interpCode = binary.LittleEndian.Uint64(e[sAddress:])
		}
		return found < len(fields) || interpCode == 0 || stubBuffer < 0 || bufferLimit < 0 ||
			l.blobCodeBegin < 0 || l.blobCodeEnd < 0 || l.blobFrameSize < 0 || l.blobFrameComplete < 0
	})
	if err != nil {
		return nil, err
	}
	if found < len(fields) {
		return nil, fmt.Errorf("HotSpot's VMStructs lack %d of the %d fields an interpreted method is named by", len(fields)-found, len(fields))
	}
	for _, off := range []int64{l.blobCodeBegin, l.blobCodeEnd, l.blobFrameSize, l.blobFrameComplete} {
		if off < 0 || off > 512 {
			l.blobCodeBegin = -1 // not described, or not believed
		}
	}
	if interpCode != 0 && stubBuffer >= 0 && stubBuffer < 4096 && bufferLimit >= 0 && bufferLimit < 4096 {
		if q := r.word(interpCode); r.err == nil && q != 0 {
			start := r.word(q + uint64(stubBuffer))
			var lb [4]byte
			if n, err := mem.ReadAt(lb[:], q+uint64(bufferLimit)); err == nil && n == 4 && r.err == nil {
				if size := uint64(binary.LittleEndian.Uint32(lb[:])); start != 0 && size > 0 && size <= maxInterpreter {
					l.interpStart, l.interpEnd = start, start+size
				}
			}
		}
		r.err = nil // the interpreter's range is a help, not a need
	}
	err = r.entries(types, tStride, func(e []byte) bool {
		name := r.cstr(binary.LittleEndian.Uint64(e[tType:]))
		if name == "ConstantPool" {
			l.constPoolSize = int64(binary.LittleEndian.Uint64(e[tSize:]))
		}
		return name != "" && l.constPoolSize == 0
	})
	if err != nil {
		return nil, err
	}
	for _, off := range []int64{l.methodConstMethod, l.constMethodConsts, l.constMethodName, l.constPoolHolder, l.constPoolLength,
		l.klassName, l.symbolLength, l.symbolBody} {
		if off < 0 || off > 4096 {
			return nil, fmt.Errorf("a VMStructs field offset of %d", off)
		}
	}
	if l.constPoolSize <= 0 || l.constPoolSize > 4096 {
		return nil, fmt.Errorf("sizeof(ConstantPool) %d", l.constPoolSize)
	}
	return l, nil
}

// interpreter reports whether pc is in the interpreter's code.
func (l *vmLayout) interpreter(pc uint64) bool {
	return l.interpEnd > l.interpStart && pc >= l.interpStart && pc < l.interpEnd
}

// vmReader reads a JVM's memory, keeping the first error.
type vmReader struct {
	mem unwind.Memory
	err error
}

func (r *vmReader) word(addr uint64) uint64 {
	var b [8]byte
	if n, err := r.mem.ReadAt(b[:], addr); err != nil || n != 8 {
		r.err = errors.Join(r.err, fmt.Errorf("reading the JVM at %#x: %v", addr, err))
		return 0
	}
	return binary.LittleEndian.Uint64(b[:])
}

// entries calls fn on each entry of the table at base, stride bytes
// apart, until fn returns false or maxVMEntries.
func (r *vmReader) entries(base, stride uint64, fn func([]byte) bool) error {
	const batch = 64
	buf := make([]byte, batch*stride)
	for i := uint64(0); i < maxVMEntries; i += batch {
		if n, err := r.mem.ReadAt(buf, base+i*stride); err != nil || n != len(buf) {
			// The table may end near the end of its mapping: one at a
			// time.
			for j := uint64(0); j < batch; j++ {
				e := buf[:stride]
				if n, err := r.mem.ReadAt(e, base+(i+j)*stride); err != nil || n != len(e) {
					return fmt.Errorf("reading HotSpot's VMStructs: %v", err)
				}
				if !fn(e) {
					return nil
				}
			}
			continue
		}
		for j := uint64(0); j < batch; j++ {
			if !fn(buf[j*stride : (j+1)*stride]) {
				return nil
			}
		}
	}
	return errors.New("HotSpot's VMStructs tables have no end")
}

// cstr reads a NUL-ended name of at most maxVMName bytes; "" for none.
func (r *vmReader) cstr(addr uint64) string {
	if addr == 0 {
		return ""
	}
	var b [maxVMName]byte
	for n := len(b); n >= 8; n /= 2 {
		// A name near the end of a mapping: read less.
		if k, err := r.mem.ReadAt(b[:n], addr); err == nil && k == n {
			if i := bytes.IndexByte(b[:n], 0); i >= 0 {
				return string(b[:i])
			}
			return ""
		}
	}
	return ""
}

// jvmBias is where libjvm.so is loaded: its first mapping's start less
// the address its file gives that mapping.
func jvmBias(e *elf.File, maps []proc.Mapping) (uint64, proc.Mapping, bool) {
	for _, m := range maps {
		if !strings.HasSuffix(m.Path, "/libjvm.so") || m.Offset != 0 {
			continue
		}
		for _, p := range e.Progs {
			if p.Type == elf.PT_LOAD && p.Off == 0 {
				return m.Start - p.Vaddr&^0xfff, m, true
			}
		}
	}
	return 0, proc.Mapping{}, false
}

// methods names the Method*s of one JVM.
type methods struct {
	l     *vmLayout
	mem   unwind.Memory
	names map[uint64]cachedMethod
}

type cachedMethod struct {
	constMethod uint64 // the Method's field when read: another one is another method
	name        string
}

// name returns "pkg.Class.method" for method m, read through its
// constant pool; false when any pointer or length does not hold.
func (ms *methods) name(m uint64) (string, bool) {
	r := vmReader{mem: ms.mem}
	if m == 0 || m&7 != 0 {
		return "", false
	}
	cm := r.word(m + uint64(ms.l.methodConstMethod))
	if r.err != nil || cm == 0 || cm&7 != 0 {
		return "", false
	}
	if c, ok := ms.names[m]; ok && c.constMethod == cm {
		return c.name, true
	}
	cp := r.word(cm + uint64(ms.l.constMethodConsts))
	var idx [2]byte
	if n, err := ms.mem.ReadAt(idx[:], cm+uint64(ms.l.constMethodName)); err != nil || n != 2 || r.err != nil || cp == 0 || cp&7 != 0 {
		return "", false
	}
	var lb [4]byte
	if n, err := ms.mem.ReadAt(lb[:], cp+uint64(ms.l.constPoolLength)); err != nil || n != 4 {
		return "", false
	}
	length := int32(binary.LittleEndian.Uint32(lb[:]))
	index := int32(binary.LittleEndian.Uint16(idx[:]))
	if length <= 0 || length > maxConstPool || index <= 0 || index >= length {
		return "", false
	}
	method, ok := ms.symbol(r.word(cp + uint64(ms.l.constPoolSize) + 8*uint64(index)))
	holder := r.word(cp + uint64(ms.l.constPoolHolder))
	if !ok || r.err != nil || holder == 0 || holder&7 != 0 {
		return "", false
	}
	class, ok := ms.symbol(r.word(holder + uint64(ms.l.klassName)))
	if !ok || r.err != nil {
		return "", false
	}
	name := strings.ReplaceAll(class, "/", ".") + "." + method
	if len(ms.names) >= maxMethods {
		clear(ms.names)
	}
	ms.names[m] = cachedMethod{constMethod: cm, name: name}
	return name, true
}

// symbol reads a HotSpot Symbol: a u2 length and its bytes (modified
// UTF-8), which must be printable: a pointer to anything else is not a
// name.
func (ms *methods) symbol(s uint64) (string, bool) {
	if s == 0 || s&7 != 0 {
		return "", false
	}
	var lb [2]byte
	if n, err := ms.mem.ReadAt(lb[:], s+uint64(ms.l.symbolLength)); err != nil || n != 2 {
		return "", false
	}
	n := int(binary.LittleEndian.Uint16(lb[:]))
	if n == 0 || n > maxSymbol {
		return "", false
	}
	b := make([]byte, n)
	if k, err := ms.mem.ReadAt(b, s+uint64(ms.l.symbolBody)); err != nil || k != n {
		return "", false
	}
	for _, c := range b {
		if c < 0x20 || c == 0x7f {
			return "", false
		}
	}
	return string(b), true
}

// openJVM reads the tables of the JVM that maps maps, through p's files
// and memory.
func openJVM(fs proc.FS, pid int, maps []proc.Mapping, mem unwind.Memory) (*methods, error) {
	var lib *proc.Mapping
	for i := range maps {
		if strings.HasSuffix(maps[i].Path, "/libjvm.so") {
			lib = &maps[i]
			break
		}
	}
	if lib == nil {
		return nil, errors.New("no libjvm.so mapped")
	}
	f, err := objfile.Open(fs, pid, *lib)
	if err != nil {
		return nil, fmt.Errorf("opening libjvm.so: %w", err)
	}
	defer f.Close()
	bias, _, ok := jvmBias(f.ELF, maps)
	if !ok {
		return nil, errors.New("libjvm.so's load address not found")
	}
	l, err := readVMLayout(f.ELF, bias, mem)
	if err != nil {
		return nil, err
	}
	return &methods{l: l, mem: mem, names: map[uint64]cachedMethod{}}, nil
}
