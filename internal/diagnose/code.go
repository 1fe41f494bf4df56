package diagnose

import (
	"github.com/cpuwhy/cpuwhy/internal/cpuprofile"
	"github.com/cpuwhy/cpuwhy/internal/disasm"
	"github.com/cpuwhy/cpuwhy/internal/sys"
	"github.com/cpuwhy/cpuwhy/internal/verdict"
)

// codeWindow bounds how far from the hottest instruction other sampled
// instructions of the same function are shown: a loop's body is a few
// dozen bytes, and a screen shows a few dozen instructions.
const codeWindow = 160

// hotCode disassembles the hottest function of thread tid around its
// hottest instruction, from the target's memory, annotated with the
// samples of each instruction. Decoding starts at the lowest sampled
// address shown: a sampled address is always an instruction's start,
// where decoding from a guessed function start could fall out of step.
func hotCode(pid, tid int, leaves []cpuprofile.Leaf) *verdict.Code {
	byFn := map[string]int{}
	var fn string
	for _, l := range leaves {
		if l.TID != tid {
			continue
		}
		byFn[l.Function] += l.Count
		if fn == "" || byFn[l.Function] > byFn[fn] {
			fn = l.Function
		}
	}
	if fn == "" {
		return nil
	}
	counts := map[uint64]int{}
	var hot uint64
	for _, l := range leaves { // hottest first
		if l.TID == tid && l.Function == fn {
			if hot == 0 {
				hot = l.PC
			}
			counts[l.PC] += l.Count
		}
	}
	lo, hi := hot, hot
	for pc := range counts {
		if pc+codeWindow >= hot && pc <= hot+codeWindow {
			lo, hi = min(lo, pc), max(hi, pc)
		}
	}
	buf := make([]byte, hi-lo+16) // the last sampled instruction and what follows
	n, err := sys.ReadProcessMemory(pid, buf, lo)
	if err != nil || n == 0 {
		return nil
	}
	ins, err := disasm.Decode(arch, buf[:n], lo)
	if err != nil {
		return nil
	}
	c := &verdict.Code{Function: fn, Samples: byFn[fn]}
	for _, in := range ins {
		c.Instructions = append(c.Instructions, verdict.Instruction{Addr: in.Addr, Text: in.Text, Samples: counts[in.Addr]})
		if in.Addr > hi {
			break // one instruction past the last sampled one
		}
	}
	return c
}
