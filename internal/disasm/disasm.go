// Package disasm decodes machine code read from a target into
// instructions, for the hottest instructions of a compute loop (the
// `disas` step of an investigation). It decodes x86-64 and arm64 with
// golang.org/x/arch.
//
// The bytes come from another process and may be anything (data, a
// half-written JIT buffer), so decoding never fails: a byte sequence that
// is no instruction becomes a one-byte (x86) or four-byte (arm64) ".byte"
// line and decoding goes on after it.
package disasm

import (
	"fmt"
	"strings"

	"golang.org/x/arch/arm64/arm64asm"
	"golang.org/x/arch/x86/x86asm"
)

// Instruction is one decoded instruction.
type Instruction struct {
	Addr uint64
	Len  int
	Text string // Intel syntax on x86-64, GNU syntax on arm64
}

// MaxBytes bounds what one call decodes.
const MaxBytes = 64 << 10

// Decode decodes code, which sits at address base in its process, from its
// first byte on. arch is a GOARCH: "amd64" or "arm64".
func Decode(arch string, code []byte, base uint64) ([]Instruction, error) {
	if len(code) > MaxBytes {
		code = code[:MaxBytes]
	}
	var out []Instruction
	switch arch {
	case "amd64":
		for off := 0; off < len(code); {
			pc := base + uint64(off)
			in, err := x86asm.Decode(code[off:], 64)
			if err != nil || in.Len == 0 {
				out = append(out, Instruction{Addr: pc, Len: 1, Text: fmt.Sprintf(".byte %#02x", code[off])})
				off++
				continue
			}
			out = append(out, Instruction{Addr: pc, Len: in.Len, Text: x86asm.IntelSyntax(in, pc, nil)})
			off += in.Len
		}
	case "arm64":
		for off := 0; off+4 <= len(code); off += 4 {
			pc := base + uint64(off)
			in, err := arm64asm.Decode(code[off : off+4])
			text := ""
			if err != nil {
				text = fmt.Sprintf(".word %#08x", uint32(code[off])|uint32(code[off+1])<<8|uint32(code[off+2])<<16|uint32(code[off+3])<<24)
			} else {
				text = strings.TrimSpace(strings.ToLower(arm64asm.GNUSyntax(in)))
			}
			out = append(out, Instruction{Addr: pc, Len: 4, Text: text})
		}
	default:
		return nil, fmt.Errorf("disassembling %s code: not supported (amd64 and arm64 are)", arch)
	}
	return out, nil
}
