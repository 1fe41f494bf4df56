package python

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/cpuwhy/cpuwhy/internal/objfile"
	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/unwind"
)

// symbols are the addresses, in the target, of what is read of it.
type symbols struct {
	runtime uint64 // _PyRuntime
	version uint64 // Py_Version (3.11+), 0 when absent
	types   objects
}

// interpreter is the object that holds the interpreter a process runs.
type interpreter struct {
	module string // its path, as the process's mappings name it
	minor  int    // from its name; -1 when its name does not say
	syms   symbols
}

// versionInName finds the minor version in the name of an interpreter's
// binary or library: python3.11, libpython3.11.so.1.0, libpython3.8d.so.
var versionInName = regexp.MustCompile(`^(?:lib)?python3\.(\d+)`)

// maxSymtab bounds the symbol table read of an object (libpython's with
// its .symtab is a few MiB), and maxCandidates the objects opened whose
// name says python: a hostile process may map many, or huge ones.
const (
	maxSymtab     = 64 << 20
	maxCandidates = 8
)

// findInterpreter finds, among the objects process pid maps, the one
// that defines PyCode_Type: the python binary, or the libpython it
// loads. One without _PyRuntime (before 3.7) is found, to be told of.
// Only objects with "python" in their name are opened. It returns nil
// when there is none: the process does not run CPython 3.
func findInterpreter(fs proc.FS, pid int, maps []proc.Mapping) (*interpreter, error) {
	// The candidates: python binaries and libpythons first, whatever
	// their place in the address space (libraries loaded later, the
	// standard library's extension modules among them, map lower);
	// extension modules (.cpython-311-x86_64-linux-gnu.so) never hold
	// the interpreter.
	var first, rest []proc.Mapping
	seen := map[string]bool{}
	for _, m := range maps {
		base := path.Base(m.Path)
		if m.Path == "" || seen[m.Path] || !strings.Contains(base, "python") || strings.Contains(base, ".cpython-") {
			continue
		}
		seen[m.Path] = true
		if strings.HasPrefix(base, "python") || strings.HasPrefix(base, "libpython") {
			first = append(first, m)
		} else {
			rest = append(rest, m)
		}
	}
	var firstErr error
	for i, m := range append(first, rest...) {
		if i == maxCandidates {
			break
		}
		base := path.Base(m.Path)
		f, err := objfile.Open(fs, pid, m)
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("opening %s: %w", m.Path, err)
			}
			continue
		}
		syms, err := readSymbols(f, maps, m.Path)
		f.Close()
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("reading the symbols of %s: %w", m.Path, err)
			}
			continue
		}
		if syms.types.code == 0 {
			continue
		}
		in := &interpreter{module: m.Path, minor: -1, syms: syms}
		if sm := versionInName.FindStringSubmatch(base); sm != nil {
			in.minor, _ = strconv.Atoi(sm[1])
		}
		return in, nil
	}
	return nil, firstErr
}

// readSymbols finds the symbols of the interpreter in f, mapped at
// module in maps: in .dynsym, which even a stripped interpreter keeps
// (they are its API), else in .symtab.
func readSymbols(f *objfile.File, maps []proc.Mapping, module string) (symbols, error) {
	want := map[string]uint64{"_PyRuntime": 0, "Py_Version": 0, "PyCode_Type": 0, "PyUnicode_Type": 0, "PyBytes_Type": 0}
	for _, tab := range []struct {
		typ  elf.SectionType
		read func() ([]elf.Symbol, error)
	}{{elf.SHT_DYNSYM, f.ELF.DynamicSymbols}, {elf.SHT_SYMTAB, f.ELF.Symbols}} {
		s := sectionOf(f.ELF, tab.typ)
		if s == nil {
			continue
		}
		if s.Size > maxSymtab {
			return symbols{}, fmt.Errorf("symbol table of %d bytes (at most %d read): %w", s.Size, maxSymtab, objfile.ErrTooLarge)
		}
		syms, err := tab.read()
		if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
			return symbols{}, err
		}
		for _, s := range syms {
			if v, ok := want[s.Name]; ok && v == 0 && s.Section != elf.SHN_UNDEF && s.Value != 0 {
				want[s.Name] = s.Value
			}
		}
		if want["_PyRuntime"] != 0 || want["PyCode_Type"] != 0 {
			break
		}
	}
	if want["_PyRuntime"] == 0 && want["PyCode_Type"] == 0 {
		return symbols{}, nil
	}
	bias, ok := loadBias(f, maps, module)
	if !ok {
		return symbols{}, fmt.Errorf("%w: no mapping of %s falls in a loadable segment", objfile.ErrMalformed, module)
	}
	at := func(name string) uint64 {
		if v := want[name]; v != 0 {
			return v + bias
		}
		return 0
	}
	syms := symbols{runtime: at("_PyRuntime"), version: at("Py_Version"),
		types: objects{code: at("PyCode_Type"), str: at("PyUnicode_Type"), bytes: at("PyBytes_Type")}}
	if syms.types.code == 0 || syms.types.str == 0 || syms.types.bytes == 0 {
		return symbols{}, fmt.Errorf("%s defines PyCode_Type or _PyRuntime but not PyCode_Type, PyUnicode_Type and PyBytes_Type", module)
	}
	return syms, nil
}

func sectionOf(e *elf.File, typ elf.SectionType) *elf.Section {
	for _, s := range e.Sections {
		if s.Type == typ {
			return s
		}
	}
	return nil
}

// loadBias is what to add to an address of f as linked to find it in
// the process: the start of a mapping of it less the address, as
// linked, of the mapping's file offset.
func loadBias(f *objfile.File, maps []proc.Mapping, module string) (uint64, bool) {
	for _, m := range maps {
		if m.Path != module {
			continue
		}
		if v, ok := f.FileOffsetToVaddr(m.Offset); ok {
			return m.Start - v, true
		}
	}
	return 0, false
}

// version finds the minor version of the interpreter: Py_Version
// (PY_VERSION_HEX, 3.11+) when it defines it, else its name.
func (in *interpreter) version(mem unwind.Memory) (int, error) {
	if in.syms.version != 0 {
		var b [8]byte
		if _, err := mem.ReadAt(b[:], in.syms.version); err != nil {
			return 0, fmt.Errorf("reading Py_Version: %w", err)
		}
		v := binary.LittleEndian.Uint64(b[:])
		if v>>24&0xff != 3 {
			return 0, fmt.Errorf("%s is not CPython 3 (Py_Version %#x)", in.module, v)
		}
		return int(v >> 16 & 0xff), nil
	}
	if in.minor < 0 {
		return 0, fmt.Errorf("the version of the interpreter in %s is unknown (its name does not say, and it defines no Py_Version)", in.module)
	}
	return in.minor, nil
}

// check reads, through the layout, what must hold of a live interpreter
// of that version: PyCode_Type is the type named "code", and on 3.13+
// _PyRuntime begins with the debug offsets of that same version. A
// mismatch means the table does not fit this build.
func (r *reader) check(syms symbols) error {
	name, err := r.ptr(syms.types.code + uint64(r.l.TypeName))
	if err != nil {
		return fmt.Errorf("reading the name of PyCode_Type: %w", err)
	}
	b, err := r.read(name, 5)
	if err != nil {
		return fmt.Errorf("reading the name of PyCode_Type: %w", err)
	}
	if string(b) != "code\x00" {
		return fmt.Errorf("%w: PyCode_Type is named %q", errBad, b)
	}
	if r.l.Minor >= 13 {
		b, err := r.read(syms.runtime, 16)
		if err != nil {
			return fmt.Errorf("reading _Py_DebugOffsets: %w", err)
		}
		if string(b[:8]) != "xdebugpy" {
			return fmt.Errorf("%w: _PyRuntime does not begin with _Py_DebugOffsets", errBad)
		}
		if v := u64(b, 8); int(v>>16&0xff) != r.l.Minor {
			return fmt.Errorf("%w: _Py_DebugOffsets of version %#x", errBad, v)
		}
		d, err := r.read(syms.runtime, debugOffsetsSize)
		if err != nil {
			return fmt.Errorf("reading _Py_DebugOffsets: %w", err)
		}
		if err := checkDebugOffsets(d, r.l); err != nil {
			return err
		}
	}
	return nil
}

// debugOffsets are where 3.13's _Py_DebugOffsets (at the start of
// _PyRuntime) keeps the offsets the layout has too, by index of its
// 8-byte fields, and the layout's field each must equal. A release whose
// structures moved (a patch release, a build with other options) is
// caught at attach instead of read wrong.
// An entry with a from (not 0) holds an offset from the field at index
// from: the GIL's fields are offsets in the interpreter of its own GIL
// (gil_runtime_state), which the layout keeps from the GIL's start.
var debugOffsets = []struct {
	index int
	field string
	of    func(Layout) int
	from  int
}{
	{5, "runtime_state.interpreters_head", func(l Layout) int { return l.RuntimeInterpretersHead }, 0},
	{9, "interpreter_state.threads_head", func(l Layout) int { return l.InterpThreadsHead }, 0},
	{14, "interpreter_state.ceval_gil", func(l Layout) int { return l.InterpGIL }, 0},
	{17, "interpreter_state.gil_runtime_state_locked", func(l Layout) int { return l.GILLocked }, 15},
	{18, "interpreter_state.gil_runtime_state_holder", func(l Layout) int { return l.GILLastHolder }, 15},
	{21, "thread_state.next", func(l Layout) int { return l.ThreadNext }, 0},
	{22, "thread_state.interp", func(l Layout) int { return l.ThreadInterp }, 0},
	{23, "thread_state.current_frame", func(l Layout) int { return l.ThreadFrame }, 0},
	{24, "thread_state.thread_id", func(l Layout) int { return l.ThreadID }, 0},
	{25, "thread_state.native_thread_id", func(l Layout) int { return l.ThreadNativeID }, 0},
	{29, "interpreter_frame.previous", func(l Layout) int { return l.FrameBack }, 0},
	{30, "interpreter_frame.executable", func(l Layout) int { return l.FrameCode }, 0},
	{31, "interpreter_frame.instr_ptr", func(l Layout) int { return l.FrameInstr }, 0},
	{32, "interpreter_frame.localsplus", func(l Layout) int { return l.FrameSize }, 0},
	{33, "interpreter_frame.owner", func(l Layout) int { return l.FrameOwner }, 0},
	{35, "code_object.filename", func(l Layout) int { return l.CodeFilename }, 0},
	{36, "code_object.name", func(l Layout) int { return l.CodeName }, 0},
	{37, "code_object.qualname", func(l Layout) int { return l.CodeQualname }, 0},
	{38, "code_object.linetable", func(l Layout) int { return l.CodeLineTable }, 0},
	{39, "code_object.firstlineno", func(l Layout) int { return l.CodeFirstLine }, 0},
	{43, "code_object.co_code_adaptive", func(l Layout) int { return l.CodeAdaptive }, 0},
	{45, "pyobject.ob_type", func(l Layout) int { return l.ObjectType }, 0},
	{47, "type_object.tp_name", func(l Layout) int { return l.TypeName }, 0},
}

// debugOffsetsSize is the part of _Py_DebugOffsets read: up to the last
// field checked.
const debugOffsetsSize = 48 * 8

// checkDebugOffsets compares l with the _Py_DebugOffsets d of a 3.13
// interpreter.
func checkDebugOffsets(d []byte, l Layout) error {
	for _, o := range debugOffsets {
		got, want := u64(d, 8*o.index), o.of(l)
		if o.from != 0 {
			got -= u64(d, 8*o.from)
		}
		if got != uint64(want) {
			return fmt.Errorf("%w: _Py_DebugOffsets has %s at %d, the layout of 3.%d at %d", errBad, o.field, got, l.Minor, want)
		}
	}
	return nil
}
