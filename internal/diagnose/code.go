package diagnose

import (
	"github.com/cpuwhy/cpuwhy/internal/cpuprofile"
	"github.com/cpuwhy/cpuwhy/internal/disasm"
	"github.com/cpuwhy/cpuwhy/internal/verdict"
)

// codeWindow bounds how far from the hottest instruction other sampled
// instructions of the same function are shown: a loop's body is a few
// dozen bytes, and a screen shows a few dozen instructions.
const codeWindow = 160

// pageSize is the least a mapping holds: the page of a sampled address
// is mapped, the bytes before it may not be.
const pageSize = 4096

// hotCode disassembles the hottest function of thread tid around its
// hottest instruction, from the target's memory (code for arch),
// annotated with the samples of each instruction, with the loop around
// that instruction when there is one.
func hotCode(mem Memory, arch string, pid, tid int, leaves []cpuprofile.Leaf) *verdict.Code {
	fn, samples, counts, hot := hottestFunction(tid, leaves)
	if fn == "" {
		return nil
	}
	lo, hi := sampledRange(counts, hot)
	// From a loop's length before the lowest sampled address (the loop
	// around the hottest one may start there) to one past the highest.
	from := lo - min(lo, disasm.MaxLoop)
	buf := make([]byte, hi+disasm.MaxLoop+16-from)
	n, err := mem.ReadMemory(pid, buf, from)
	if page := lo &^ (pageSize - 1); err != nil && page > from {
		// The bytes before lo may be unmapped; its page is not. (When
		// that page begins at or before from, the read did not fail for
		// want of a mapping: the process is gone.)
		from = page
		buf = buf[:hi+disasm.MaxLoop+16-from]
		n, err = mem.ReadMemory(pid, buf, from)
	}
	if err != nil || n == 0 {
		return nil
	}
	return listing(arch, buf[:n], from, fn, samples, counts, hot)
}

// hottestFunction returns the function of thread tid with the most
// samples, the count of them, the samples of each of its addresses, and
// its hottest address. Addresses sampled before an exec are left out:
// the code there is no longer in the process's memory to be read.
func hottestFunction(tid int, leaves []cpuprofile.Leaf) (fn string, samples int, counts map[uint64]int, hot uint64) {
	byFn := map[string]int{}
	for _, l := range leaves {
		if l.TID != tid || l.Past {
			continue
		}
		byFn[l.Function] += l.Count
		if fn == "" || byFn[l.Function] > byFn[fn] {
			fn = l.Function
		}
	}
	if fn == "" {
		return "", 0, nil, 0
	}
	counts = map[uint64]int{}
	for _, l := range leaves { // hottest first
		if l.TID == tid && l.Function == fn && !l.Past {
			if hot == 0 {
				hot = l.PC
			}
			counts[l.PC] += l.Count
		}
	}
	return fn, byFn[fn], counts, hot
}

// sampledRange returns the lowest and highest sampled addresses within
// codeWindow of the hottest one.
func sampledRange(counts map[uint64]int, hot uint64) (lo, hi uint64) {
	lo, hi = hot, hot
	for pc := range counts {
		if pc+codeWindow >= hot && pc <= hot+codeWindow {
			lo, hi = min(lo, pc), max(hi, pc)
		}
	}
	return lo, hi
}

// listing decodes code (the bytes at base) into the annotated listing of
// function fn: from the start of the loop around the hottest address
// when there is one, else from the lowest sampled address, to one
// instruction past both the loop and the highest sampled address.
// Decoding starts only where an instruction is known to start: a sampled
// address, or the target of the branch that closes a loop; a guessed
// function start could fall out of step.
func listing(arch string, code []byte, base uint64, fn string, samples int, counts map[uint64]int, hot uint64) *verdict.Code {
	lo, hi := sampledRange(counts, hot)
	c := &verdict.Code{Function: fn, Samples: samples}
	start, last := lo, hi
	if loop, ok := disasm.FindLoop(arch, code, base, hot); ok && loop.Start >= base {
		c.Loop = &verdict.Loop{Start: loop.Start, End: loop.End}
		start, last = min(start, loop.Start), max(last, loop.End-1)
	}
	if start < base || start-base >= uint64(len(code)) {
		return nil
	}
	end := min(uint64(len(code)), last+16-base)
	ins, err := disasm.Decode(arch, code[start-base:end], start)
	if err != nil {
		return nil
	}
	for _, in := range ins {
		c.Instructions = append(c.Instructions, verdict.Instruction{Addr: in.Addr, Text: in.Text, Samples: counts[in.Addr]})
		if in.Addr > last {
			break // one instruction past the last one of interest
		}
	}
	return c
}
