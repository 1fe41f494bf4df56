package unwind

import (
	"debug/elf"
	"fmt"
	"os"
)

// maxSectionSize caps what ELFSections reads of one section: the biggest
// real .eh_frame (a browser's) is tens of MiB, and the section header may
// be hostile.
const maxSectionSize = 1 << 30

// ELFSections reads the call frame sections of an ELF object. The vdso,
// read from a process's memory, is an ELF object like any other. Sections
// that are absent stay empty.
func ELFSections(f *elf.File) (Sections, error) {
	var s Sections
	read := func(name string) ([]byte, uint64, error) {
		sec := f.Section(name)
		if sec == nil || sec.Type == elf.SHT_NOBITS {
			return nil, 0, nil
		}
		if sec.Size > maxSectionSize {
			return nil, 0, fmt.Errorf("section %s: %d bytes is more than %d", name, sec.Size, maxSectionSize)
		}
		data, err := sec.Data()
		if err != nil {
			return nil, 0, fmt.Errorf("reading section %s: %w", name, err)
		}
		return data, sec.Addr, nil
	}
	var err error
	if s.EHFrame, s.EHFrameAddr, err = read(".eh_frame"); err != nil {
		return s, err
	}
	if s.EHFrameHdr, s.EHFrameHdrAddr, err = read(".eh_frame_hdr"); err != nil {
		return s, err
	}
	if s.DebugFrame, _, err = read(".debug_frame"); err != nil {
		return s, err
	}
	return s, nil
}

// LoadBias returns what to subtract from an address in a mapping of f to
// get the address f is linked at: the mapping starts at mapStart and maps
// f from file offset mapOffset (both from /proc/PID/maps).
func LoadBias(f *elf.File, mapStart, mapOffset uint64) (uint64, error) {
	return loadBias(loadSegments(f), mapStart, mapOffset)
}

func loadBias(loads []elf.ProgHeader, mapStart, mapOffset uint64) (uint64, error) {
	// A mapping starts at the page boundary at or before its segment's
	// file offset. The target runs on this kernel, so its page size is
	// ours.
	page := uint64(os.Getpagesize())
	for _, p := range loads {
		if p.Type == elf.PT_LOAD && p.Off&^(page-1) <= mapOffset && mapOffset < p.Off+p.Filesz {
			return mapStart - mapOffset - (p.Vaddr - p.Off), nil
		}
	}
	return 0, fmt.Errorf("no loadable segment maps file offset %#x", mapOffset)
}
