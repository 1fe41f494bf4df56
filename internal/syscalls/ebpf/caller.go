package ebpf

import (
	"encoding/binary"
	"io"
	"slices"

	"github.com/cpuwhy/cpuwhy/internal/proc"
)

// leafCaller picks, among the words kept at a sampled call (the top of
// the user stack on amd64, the link register on arm64), the first that is
// a return address: inside an executable mapping and right after a call
// instruction. That is the caller of a function that made the system call
// without a frame of its own, which a frame-pointer walk cannot see. It is
// a heuristic: a stale return address left in an uninitialised local
// passes the same test.
func leafCaller(arch string, words []uint64, maps []proc.Mapping, mem io.ReaderAt) (uint64, bool) {
	for _, w := range words {
		if w == 0 || !executable(maps, w) {
			continue
		}
		if afterCall(arch, w, mem) {
			return w, true
		}
	}
	return 0, false
}

func executable(maps []proc.Mapping, addr uint64) bool {
	i, found := slices.BinarySearchFunc(maps, addr, func(m proc.Mapping, a uint64) int {
		switch {
		case a < m.Start:
			return 1
		case a >= m.End:
			return -1
		}
		return 0
	})
	return found && maps[i].Exec()
}

// afterCall reports whether the instruction ending at ret is a call.
func afterCall(arch string, ret uint64, mem io.ReaderAt) bool {
	switch arch {
	case "amd64":
		// call rel32 is 5 bytes; call through a register or memory
		// (FF /2) 2 to 7, with prefixes, displacements and SIB.
		var b [7]byte
		if ret < uint64(len(b)) {
			return false
		}
		if _, err := mem.ReadAt(b[:], int64(ret-uint64(len(b)))); err != nil {
			return false
		}
		if b[2] == 0xe8 {
			return true
		}
		for _, k := range []int{2, 3, 4, 6, 7} {
			op := len(b) - k
			if b[op] == 0xff && (b[op+1]>>3)&7 == 2 {
				return true
			}
		}
	case "arm64":
		var b [4]byte
		if ret < 4 {
			return false
		}
		if _, err := mem.ReadAt(b[:], int64(ret-4)); err != nil {
			return false
		}
		insn := binary.LittleEndian.Uint32(b[:])
		return insn&0xfc000000 == 0x94000000 || // BL
			insn&0xfffffc1f == 0xd63f0000 // BLR
	}
	return false
}
