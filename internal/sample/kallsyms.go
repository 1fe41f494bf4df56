package sample

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"

	"github.com/cpuwhy/cpuwhy/internal/proc"
)

// KernelSymbols names kernel PCs from /proc/kallsyms.
type KernelSymbols struct {
	syms []ksym // text symbols sorted by address
	// Restricted is true when kptr_restrict (or not being root) made the
	// kernel print every address as zero: no PC can be named then.
	Restricted bool
}

type ksym struct {
	addr   uint64
	name   string
	module string // "" for the kernel image
}

// maxKallsyms caps the symbols kept: a kernel with every module loaded has
// a few hundred thousand, and the input may be hostile.
const maxKallsyms = 4 << 20

// ReadKernelSymbols reads kallsyms under fs's root.
func ReadKernelSymbols(fs proc.FS) (*KernelSymbols, error) {
	data, err := os.ReadFile(fs.Path("kallsyms"))
	if err != nil {
		return nil, fmt.Errorf("reading kernel symbols: %w", err)
	}
	return ParseKallsyms(data)
}

// ParseKallsyms parses the text of /proc/kallsyms: "ADDR TYPE NAME
// [MODULE]" per line. Only text symbols (types t, T, w, W) are kept.
func ParseKallsyms(data []byte) (*KernelSymbols, error) {
	k := &KernelSymbols{}
	allZero, any := true, false
	for lineNo := 1; len(data) > 0; lineNo++ {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte("\n"))
		if len(line) == 0 {
			continue
		}
		f := bytes.Fields(line)
		if len(f) < 3 || len(f[1]) != 1 {
			return nil, fmt.Errorf("kallsyms line %d: %q is not ADDR TYPE NAME", lineNo, truncate(line))
		}
		addr, err := strconv.ParseUint(string(f[0]), 16, 64)
		if err != nil {
			return nil, fmt.Errorf("kallsyms line %d: %w", lineNo, err)
		}
		any = true
		if addr != 0 {
			allZero = false
		}
		switch f[1][0] {
		case 't', 'T', 'w', 'W':
		default:
			continue
		}
		if len(k.syms) >= maxKallsyms {
			return nil, fmt.Errorf("kallsyms: more than %d text symbols", maxKallsyms)
		}
		s := ksym{addr: addr, name: string(f[2])}
		if len(f) > 3 {
			s.module = string(bytes.Trim(f[3], "[]"))
		}
		k.syms = append(k.syms, s)
	}
	if any && allZero {
		k.Restricted = true
		k.syms = nil
		return k, nil
	}
	slices.SortStableFunc(k.syms, func(a, b ksym) int {
		switch {
		case a.addr < b.addr:
			return -1
		case a.addr > b.addr:
			return 1
		}
		return 0
	})
	return k, nil
}

// Len is the number of text symbols known.
func (k *KernelSymbols) Len() int { return len(k.syms) }

// Lookup names the function containing pc: the nearest symbol at or
// below it. Kallsyms has no sizes, so a PC past the end of the last
// function is still given its name; ok is false below the first symbol
// or when addresses are restricted.
func (k *KernelSymbols) Lookup(pc uint64) (name, module string, offset uint64, ok bool) {
	i, found := slices.BinarySearchFunc(k.syms, pc, func(s ksym, pc uint64) int {
		switch {
		case s.addr < pc:
			return -1
		case s.addr > pc:
			return 1
		}
		return 0
	})
	if !found {
		i--
	}
	if i < 0 || i >= len(k.syms) {
		return "", "", 0, false
	}
	s := k.syms[i]
	return s.name, s.module, pc - s.addr, true
}

// Name is Lookup as text: "func", "func [module]", or "[kernel]" when
// the PC cannot be named.
func (k *KernelSymbols) Name(pc uint64) string {
	name, module, _, ok := k.Lookup(pc)
	switch {
	case !ok:
		return "[kernel]"
	case module != "":
		return name + " [" + module + "]"
	}
	return name
}

func truncate(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}
