package proc

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// Mapping is one line of /proc/PID/maps: an address range and what is
// mapped there.
type Mapping struct {
	Start, End uint64 // [Start, End)
	Perms      string // "r-xp"
	Offset     uint64 // in the file
	Path       string // file, "[vdso]", "[stack]", or "" when anonymous
}

// Exec reports whether the mapping is executable.
func (m Mapping) Exec() bool { return len(m.Perms) > 2 && m.Perms[2] == 'x' }

// maxMappings caps what ParseMaps keeps: a process has at most
// vm.max_map_count mappings (65530 by default), and the input may be
// hostile.
const maxMappings = 1 << 20

// Maps reads the mappings of process pid.
func (f FS) Maps(pid int) ([]Mapping, error) {
	data, err := os.ReadFile(f.PIDPath(pid, "maps"))
	if err != nil {
		return nil, fmt.Errorf("reading mappings of %d: %w", pid, gone(err))
	}
	return ParseMaps(data)
}

// ParseMaps parses the text of /proc/PID/maps, sorted by address as the
// kernel writes it.
func ParseMaps(data []byte) ([]Mapping, error) {
	var out []Mapping
	for lineNo := 1; len(data) > 0; lineNo++ {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte{'\n'})
		if len(line) == 0 {
			continue
		}
		if len(out) == maxMappings {
			return nil, fmt.Errorf("maps line %d: more than %d mappings", lineNo, maxMappings)
		}
		m, err := parseMapping(line)
		if err != nil {
			return nil, fmt.Errorf("maps line %d: %w", lineNo, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// parseMapping parses "start-end perms offset dev inode [path]".
func parseMapping(line []byte) (Mapping, error) {
	var m Mapping
	fields := bytes.Fields(line)
	if len(fields) < 5 {
		return m, fmt.Errorf("%q: want at least 5 fields", line)
	}
	lo, hi, ok := bytes.Cut(fields[0], []byte{'-'})
	if !ok {
		return m, fmt.Errorf("%q: no address range", fields[0])
	}
	var err error
	if m.Start, err = strconv.ParseUint(string(lo), 16, 64); err != nil {
		return m, err
	}
	if m.End, err = strconv.ParseUint(string(hi), 16, 64); err != nil {
		return m, err
	}
	if m.Offset, err = strconv.ParseUint(string(fields[2]), 16, 64); err != nil {
		return m, err
	}
	m.Perms = string(fields[1])
	if len(fields) > 5 {
		m.Path = string(afterFields(line, 5))
	}
	return m, nil
}

// afterFields returns line after its first n space-separated fields and
// the spaces that follow: the path, which may itself hold spaces.
func afterFields(line []byte, n int) []byte {
	for range n {
		line = bytes.TrimLeft(line, " \t")
		if i := bytes.IndexAny(line, " \t"); i >= 0 {
			line = line[i:]
		} else {
			return nil
		}
	}
	return bytes.TrimLeft(line, " \t")
}

// OpenMem opens the memory of process pid for reading (ReadAt at a
// virtual address), which needs the right to ptrace it.
func (f FS) OpenMem(pid int) (*os.File, error) {
	file, err := os.Open(f.PIDPath(pid, "mem"))
	if err != nil {
		return nil, fmt.Errorf("opening memory of %d: %w", pid, gone(err))
	}
	return file, nil
}
