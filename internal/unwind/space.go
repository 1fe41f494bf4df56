package unwind

import (
	"bytes"
	"debug/elf"
	"fmt"
	"sort"
	"strings"

	"github.com/cpuwhy/cpuwhy/internal/proc"
)

// maxVDSOSize caps what NewSpace reads of the vdso: it is two pages on
// x86-64 today.
const maxVDSOSize = 1 << 20

// Space is the executable mappings of one process, each with the unwind
// table of its object, ready to answer Lookup.
type Space struct {
	maps []spaceMapping // sorted by start
}

type spaceMapping struct {
	start, end, bias uint64
	table            *Table // nil: no usable CFI
}

// OpenELF opens the file a mapping maps. The caller decides how (the
// target's root, or its map_files for an object deleted or replaced since
// it was mapped, checking it is the very file mapped) and closes nothing:
// Space reads the sections it needs before returning. Mappings of one
// path share the first one's object.
type OpenELF func(m proc.Mapping) (*elf.File, error)

// NewSpace builds the tables of every executable mapping of maps: files
// through open, the vdso from mem (the kernel maps it as an ELF image).
// An object whose CFI cannot be read keeps its mapping, so frame pointers
// still walk through it; why is in the returned errors, one per object.
func NewSpace(maps []proc.Mapping, open OpenELF, mem Memory) (*Space, []error) {
	s := &Space{}
	var errs []error
	objects := map[string]*object{}
	for _, m := range maps {
		if !m.Exec() {
			continue
		}
		sm := spaceMapping{start: m.Start, end: m.End}
		path := strings.TrimSuffix(m.Path, " (deleted)")
		var obj *object
		switch {
		case path == "[vdso]":
			obj = loadVDSO(m, mem, &errs)
			if obj != nil {
				m.Offset = 0
			}
		case path == "" || strings.HasPrefix(path, "["):
			// Anonymous code (JIT) or [vsyscall]: frame pointers only.
		default:
			var ok bool
			if obj, ok = objects[path]; !ok {
				obj = &object{}
				objects[path] = obj
				f, err := open(m)
				if err != nil {
					errs = append(errs, fmt.Errorf("opening %s: %w", path, err))
				} else {
					obj.f = f
					obj.table, err = elfTable(f)
					if err != nil {
						errs = append(errs, fmt.Errorf("call frame information of %s: %w", path, err))
					}
				}
			}
		}
		if obj != nil && obj.f != nil {
			bias, err := LoadBias(obj.f, m.Start, m.Offset)
			if err != nil {
				errs = append(errs, fmt.Errorf("mapping %#x of %s: %w", m.Start, path, err))
			} else {
				sm.bias, sm.table = bias, obj.table
			}
		}
		s.maps = append(s.maps, sm)
	}
	for _, obj := range objects {
		if obj.f != nil {
			obj.f.Close()
		}
	}
	sort.Slice(s.maps, func(i, j int) bool { return s.maps[i].start < s.maps[j].start })
	return s, errs
}

func elfTable(f *elf.File) (*Table, error) {
	secs, err := ELFSections(f)
	if err != nil {
		return nil, err
	}
	return NewTable(secs)
}

// object is one ELF object and its table; f only until NewSpace returns.
type object struct {
	f     *elf.File
	table *Table
}

func loadVDSO(m proc.Mapping, mem Memory, errs *[]error) *object {
	size := m.End - m.Start
	if mem == nil || size > maxVDSOSize {
		return nil
	}
	img := make([]byte, size)
	if _, err := mem.ReadAt(img, m.Start); err != nil {
		*errs = append(*errs, fmt.Errorf("reading the vdso: %w", err))
		return nil
	}
	f, err := elf.NewFile(bytes.NewReader(img))
	if err != nil {
		*errs = append(*errs, fmt.Errorf("parsing the vdso: %w", err))
		return nil
	}
	t, err := elfTable(f)
	if err != nil {
		*errs = append(*errs, fmt.Errorf("call frame information of the vdso: %w", err))
	}
	return &object{f: f, table: t}
}

// Lookup implements the Lookup function type.
func (s *Space) Lookup(pc uint64) (*Table, uint64, bool) {
	i := sort.Search(len(s.maps), func(i int) bool { return s.maps[i].end > pc })
	if i == len(s.maps) || pc < s.maps[i].start {
		return nil, 0, false
	}
	return s.maps[i].table, s.maps[i].bias, true
}
