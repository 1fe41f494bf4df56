package unwind

import (
	"bytes"
	"debug/elf"
	"fmt"
	"sort"
	"strings"
	"unsafe"

	"github.com/cpuwhy/cpuwhy/internal/objfile"
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
// path share the first one's object. A Cache's Space opens only the
// objects it does not hold.
type OpenELF func(m proc.Mapping) (*elf.File, error)

// NewSpace builds the tables of every executable mapping of maps: files
// through open, the vdso from mem (the kernel maps it as an ELF image).
// An object whose CFI cannot be read keeps its mapping, so frame pointers
// still walk through it; why is in the returned errors, one per object.
func NewSpace(maps []proc.Mapping, open OpenELF, mem Memory) (*Space, []error) {
	return newSpace(maps, open, mem, nil, nil)
}

// Identify gives the identity of the file a mapping maps without reading
// it (objfile.Identify: its device, inode, size and modification time),
// the key of a Cache.
type Identify func(m proc.Mapping) (objfile.Key, error)

// Cache keeps the tables of objects from one Space to the next, for a
// long-lived process (cpuwhy agent) whose diagnoses would otherwise read
// libc's CFI again each time: keyed by each file's identity, so that a
// container's file is not the host's at the same path and a file
// rewritten is another, bounded by the bytes the tables hold, the least
// recently used evicted first. An object that could not be opened or
// whose CFI could not be read is not kept: the next Space tries again.
// It is safe for concurrent use; a table evicted stays valid for the
// Spaces that hold it.
type Cache struct {
	c *objfile.Cache[*object]
}

// maxCachedObjects bounds the objects of a Cache whatever their size:
// most are small.
const maxCachedObjects = 1024

// NewCache returns a Cache of tables of at most maxBytes bytes in all.
func NewCache(maxBytes int64) *Cache {
	return &Cache{c: objfile.NewSizedCache[*object](maxCachedObjects, maxBytes, (*object).bytes, nil)}
}

// Len is the number of objects whose tables c holds.
func (c *Cache) Len() int { return c.c.Len() }

// Bytes is the memory the tables of c hold.
func (c *Cache) Bytes() int64 { return c.c.Bytes() }

// NewSpace is NewSpace taking the tables of the objects id identifies
// from c when it holds them, and keeping those it reads. Objects id
// cannot identify are read and not kept.
func (c *Cache) NewSpace(maps []proc.Mapping, id Identify, open OpenELF, mem Memory) (*Space, []error) {
	return newSpace(maps, open, mem, c, id)
}

func newSpace(maps []proc.Mapping, open OpenELF, mem Memory, cache *Cache, id Identify) (*Space, []error) {
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
				obj = loadObject(m, path, open, cache, id, &errs)
				objects[path] = obj
			}
		}
		if obj != nil && obj.loads != nil {
			bias, err := obj.loadBias(m.Start, m.Offset)
			if err != nil {
				errs = append(errs, fmt.Errorf("mapping %#x of %s: %w", m.Start, path, err))
			} else {
				sm.bias, sm.table = bias, obj.table
			}
		}
		s.maps = append(s.maps, sm)
	}
	sort.Slice(s.maps, func(i, j int) bool { return s.maps[i].start < s.maps[j].start })
	return s, errs
}

// loadObject reads the table of the object m maps at path, or takes it
// from cache. The object is nil when it could not be opened.
func loadObject(m proc.Mapping, path string, open OpenELF, cache *Cache, id Identify, errs *[]error) *object {
	var key objfile.Key
	keyed := false
	if cache != nil && id != nil {
		var err error
		if key, err = id(m); err == nil {
			keyed = true
			if obj, ok := cache.c.Get(key); ok {
				return obj
			}
		}
	}
	f, err := open(m)
	if err != nil {
		*errs = append(*errs, fmt.Errorf("opening %s: %w", path, err))
		return nil
	}
	defer f.Close() // the sections are read: nothing of f is kept
	obj := &object{loads: loadSegments(f)}
	obj.table, err = elfTable(f)
	if err != nil {
		*errs = append(*errs, fmt.Errorf("call frame information of %s: %w", path, err))
	} else if keyed {
		cache.c.Add(key, obj)
	}
	return obj
}

func elfTable(f *elf.File) (*Table, error) {
	secs, err := ELFSections(f)
	if err != nil {
		return nil, err
	}
	return NewTable(secs)
}

// object is one ELF object's table and what places its mappings.
type object struct {
	table *Table // nil: no usable CFI
	// loads are its PT_LOAD segments, never nil once read.
	loads []elf.ProgHeader
}

func (o *object) bytes() int64 {
	n := int64(unsafe.Sizeof(*o)) + int64(len(o.loads))*int64(unsafe.Sizeof(elf.ProgHeader{}))
	if o.table != nil {
		n += o.table.Bytes()
	}
	return n
}

// loadSegments returns f's loadable segments (empty, not nil, when it
// has none).
func loadSegments(f *elf.File) []elf.ProgHeader {
	loads := []elf.ProgHeader{}
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD {
			loads = append(loads, p.ProgHeader)
		}
	}
	return loads
}

// loadBias is LoadBias of the object.
func (o *object) loadBias(mapStart, mapOffset uint64) (uint64, error) {
	return loadBias(o.loads, mapStart, mapOffset)
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
	return &object{table: t, loads: loadSegments(f)}
}

// Lookup implements the Lookup function type.
func (s *Space) Lookup(pc uint64) (*Table, uint64, bool) {
	i := sort.Search(len(s.maps), func(i int) bool { return s.maps[i].end > pc })
	if i == len(s.maps) || pc < s.maps[i].start {
		return nil, 0, false
	}
	return s.maps[i].table, s.maps[i].bias, true
}
