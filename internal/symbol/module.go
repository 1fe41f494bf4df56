package symbol

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/cpuwhy/cpuwhy/internal/proc"
)

// Modules names addresses by module and file offset, from a snapshot of a
// process's mappings.
type Modules struct {
	maps []proc.Mapping // executable mappings, sorted by address
}

// ReadModules snapshots the executable mappings of pid.
func ReadModules(fs proc.FS, pid int) (*Modules, error) {
	all, err := fs.Maps(pid)
	if err != nil {
		return nil, err
	}
	return NewModules(all), nil
}

// NewModules keeps the executable mappings of maps.
func NewModules(maps []proc.Mapping) *Modules {
	m := &Modules{}
	for _, mp := range maps {
		if mp.Exec() {
			m.maps = append(m.maps, mp)
		}
	}
	sort.Slice(m.maps, func(i, j int) bool { return m.maps[i].Start < m.maps[j].Start })
	return m
}

// Frame names one address: "libnat.so+0x1139", "[vdso]+0x9a0", or
// "0x7f3a2c001000 (unmapped)".
func (m *Modules) Frame(pc uint64) string {
	i := sort.Search(len(m.maps), func(i int) bool { return m.maps[i].End > pc })
	if i == len(m.maps) || pc < m.maps[i].Start {
		return fmt.Sprintf("%#x (unmapped)", pc)
	}
	mp := m.maps[i]
	name := mp.Path
	switch {
	case name == "":
		return fmt.Sprintf("%#x (anonymous code)", pc)
	case strings.HasPrefix(name, "["):
		return fmt.Sprintf("%s+%#x", name, pc-mp.Start)
	}
	name = strings.TrimSuffix(name, " (deleted)")
	return fmt.Sprintf("%s+%#x", path.Base(name), pc-mp.Start+mp.Offset)
}

// Frames names each address of a stack.
func (m *Modules) Frames(pcs []uint64) []string {
	out := make([]string, len(pcs))
	for i, pc := range pcs {
		out[i] = m.Frame(pc)
	}
	return out
}
