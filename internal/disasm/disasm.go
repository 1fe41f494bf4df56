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
	// Target is where a direct jump or conditional branch goes, and Jump
	// says the instruction is one. Calls are not jumps: a loop is closed
	// by a branch, and a call returns to the next instruction.
	Target uint64
	Jump   bool
	// Stops says control never goes on to the next instruction: an
	// unconditional jump, a return, an indirect jump, a trap.
	Stops bool
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
			i := Instruction{Addr: pc, Len: in.Len, Text: x86asm.IntelSyntax(in, pc, nil)}
			if rel, ok := in.Args[0].(x86asm.Rel); ok && x86Jump(in.Op) {
				i.Target, i.Jump = pc+uint64(in.Len)+uint64(int64(rel)), true
			}
			switch in.Op {
			case x86asm.JMP, x86asm.LJMP, x86asm.RET, x86asm.LRET, x86asm.IRET, x86asm.IRETD, x86asm.IRETQ, x86asm.UD1, x86asm.UD2, x86asm.HLT:
				i.Stops = true
			}
			out = append(out, i)
			off += in.Len
		}
	case "arm64":
		for off := 0; off+4 <= len(code); off += 4 {
			pc := base + uint64(off)
			in, err := arm64asm.Decode(code[off : off+4])
			i := Instruction{Addr: pc, Len: 4}
			if err != nil {
				i.Text = fmt.Sprintf(".word %#08x", uint32(code[off])|uint32(code[off+1])<<8|uint32(code[off+2])<<16|uint32(code[off+3])<<24)
			} else {
				i.Text = strings.TrimSpace(strings.ToLower(arm64asm.GNUSyntax(in)))
				i.Target, i.Jump = arm64Jump(in, pc)
				_, cond := in.Args[0].(arm64asm.Cond)
				i.Stops = in.Op == arm64asm.B && !cond || in.Op == arm64asm.BR || in.Op == arm64asm.RET ||
					in.Op == arm64asm.ERET || in.Op == arm64asm.BRK
			}
			out = append(out, i)
		}
	default:
		return nil, fmt.Errorf("disassembling %s code: not supported (amd64 and arm64 are)", arch)
	}
	return out, nil
}

// x86Jump reports whether op is a direct jump or a conditional branch
// (when its operand is relative): JMP, every Jcc, JCXZ and its kin, and
// the LOOP family.
func x86Jump(op x86asm.Op) bool {
	name := op.String()
	return strings.HasPrefix(name, "J") || strings.HasPrefix(name, "LOOP")
}

// arm64Jump returns the target of a direct branch: B and B.cond, CBZ,
// CBNZ, TBZ and TBNZ. BL is a call, and ADR, ADRP and literal loads take
// PC-relative operands that are data, not code.
func arm64Jump(in arm64asm.Inst, pc uint64) (uint64, bool) {
	switch in.Op {
	case arm64asm.B, arm64asm.CBZ, arm64asm.CBNZ, arm64asm.TBZ, arm64asm.TBNZ:
	default:
		return 0, false
	}
	for _, a := range in.Args {
		if rel, ok := a.(arm64asm.PCRel); ok {
			return pc + uint64(int64(rel)), true
		}
	}
	return 0, false
}

// MaxLoop is the longest loop FindLoop looks for, in bytes. A spin-wait
// or a polling loop is a handful of instructions; a loop that is longer
// holds enough other work that it is a loop of that work.
const MaxLoop = 256

// Loop is the code of a loop, from its first instruction (the target of
// the branch that closes it) to the end of that branch.
type Loop struct {
	Start, End uint64 // [Start, End)
}

// Contains reports whether addr is in the loop.
func (l Loop) Contains(addr uint64) bool { return addr >= l.Start && addr < l.End }

// FindLoop finds the innermost loop around pc: the first branch on the
// path from pc, within MaxLoop bytes, that goes back to pc or before it,
// at most MaxLoop bytes before itself. The path falls through
// instructions, follows unconditional jumps forward and ends at a return,
// an indirect jump or a trap (code after a return belongs to another
// path). code holds the bytes at base, and pc must start an instruction
// (a sampled address always does): decoding forward from it stays in
// step, and the loop's start is then known to start an instruction too,
// because a branch goes there, so a caller can decode the whole loop from
// it. That is how a loop is found without knowing where its function
// starts, and whichever of its instructions the samples landed on (a
// timer sample lands after a PAUSE, not on it).
func FindLoop(arch string, code []byte, base, pc uint64) (Loop, bool) {
	at, walked := pc, 0
	for walked < MaxLoop && at >= base && at-base < uint64(len(code)) {
		off := at - base
		ins, err := Decode(arch, code[off:min(uint64(len(code)), off+16)], at)
		if err != nil || len(ins) == 0 {
			return Loop{}, false
		}
		in := ins[0]
		switch {
		case in.Jump && in.Target <= pc && in.Addr-in.Target <= MaxLoop:
			return Loop{Start: in.Target, End: in.Addr + uint64(in.Len)}, true
		case in.Jump && in.Stops && in.Target > in.Addr:
			at = in.Target
		case in.Stops:
			return Loop{}, false
		default:
			at += uint64(in.Len)
		}
		walked += in.Len
	}
	return Loop{}, false
}
