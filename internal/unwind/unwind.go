package unwind

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cpuwhy/cpuwhy/internal/sys"
)

// Regs are the registers unwinding starts from. On x86-64 PC is rip, SP
// rsp and FP rbp; on arm64 FP is x29 and LR x30 (arm64 unwinding is not
// implemented yet: LR is carried for it).
type Regs struct {
	PC, SP, FP, LR uint64
}

// Memory is the target's memory as far as the unwinder may read it.
type Memory interface {
	// ReadAt reads len(p) bytes at addr. A short read is an error.
	ReadAt(p []byte, addr uint64) (int, error)
}

// ErrOutsideCopy is returned by StackCopy for bytes it does not hold.
var ErrOutsideCopy = errors.New("address outside the stack copy")

// StackCopy is a copy of a stack taken from Base upwards: a perf sample's
// PERF_SAMPLE_STACK_USER bytes (Base is the sampled SP), or bytes read from
// a stopped thread.
type StackCopy struct {
	Base uint64
	Data []byte
}

// ReadAt implements Memory.
func (s StackCopy) ReadAt(p []byte, addr uint64) (int, error) {
	if addr < s.Base || addr-s.Base > uint64(len(s.Data)) || uint64(len(p)) > uint64(len(s.Data))-(addr-s.Base) {
		return 0, fmt.Errorf("reading %d bytes at %#x: %w", len(p), addr, ErrOutsideCopy)
	}
	return copy(p, s.Data[addr-s.Base:]), nil
}

// ProcessMemory reads the memory of process Pid with process_vm_readv,
// which needs the right to ptrace it. Unwinding a thread that runs reads
// a stack that changes underneath: stop it first.
type ProcessMemory struct {
	Pid int
}

// ReadAt implements Memory.
func (m ProcessMemory) ReadAt(p []byte, addr uint64) (int, error) {
	n, err := sys.ReadProcessMemory(m.Pid, p, addr)
	if err == nil && n < len(p) {
		err = fmt.Errorf("reading %d bytes at %#x of %d: short read of %d", len(p), addr, m.Pid, n)
	}
	return n, err
}

// Lookup finds the object mapped at pc: its unwind table (nil when it
// has none) and its load bias, so that pc-bias is an address of the
// object as linked. mapped is false when nothing executable is mapped at
// pc, which ends a frame-pointer walk.
type Lookup func(pc uint64) (table *Table, bias uint64, mapped bool)

// Method says how a frame's caller was found.
type Method uint8

// Methods.
const (
	MethodNone         Method = iota // the last frame: its caller was not found
	MethodCFI                        // from the FDE covering the frame's PC
	MethodFramePointer               // from [FP] and [FP+8], with no FDE there
)

// Stop says why unwinding ended.
type Stop uint8

// Reasons to stop. Three mean the whole stack was walked (Complete): CFI
// marks the return address undefined, as glibc does in clone3 and _start
// (StopOutermost); a frame-pointer chain ends in a zero return address
// (StopZeroRA) or a zero frame pointer (StopZeroFP).
const (
	StopNone        Stop = iota // not stopped: the zero value, never in a Trace
	StopOutermost               // CFI says there is no caller
	StopZeroRA                  // a return address of 0 (a frame-pointer chain's end)
	StopMaxFrames               // max frames reached
	StopUnmapped                // a return address outside any executable mapping
	StopNoProgress              // the CFA or frame pointer did not move up the stack
	StopMemory                  // a read outside the memory (end of the stack copy)
	StopUnsupported             // CFI this package does not evaluate, or a register it lost
	StopNoInfo                  // no FDE and no usable frame pointer
	StopBadCFI                  // malformed CFI
	// A frame-pointer chain reached a frame pointer of 0, the x86-64
	// psABI's mark of the deepest frame: where Go's goroutines start
	// (runtime.goexit) and what _start leaves.
	StopZeroFP
)

var stopNames = [...]string{"not stopped", "outermost frame", "zero return address", "frame limit", "unmapped return address",
	"stack pointer did not increase", "stack memory not available", "unsupported CFI", "no frame information", "malformed CFI",
	"zero frame pointer"}

// Complete says whether the walk ended at the stack's deepest frame rather
// than on missing or unusable information.
func (s Stop) Complete() bool {
	return s == StopOutermost || s == StopZeroRA || s == StopZeroFP
}

func (s Stop) String() string {
	if int(s) < len(stopNames) {
		return stopNames[s]
	}
	return fmt.Sprintf("Stop(%d)", s)
}

// Frame is one frame of an unwound stack.
type Frame struct {
	PC uint64 // the sampled PC for the first frame, a return address for the others
	SP uint64 // the stack pointer in the frame (the callee's CFA)
	// FP is the frame pointer register's value in the frame, 0 when
	// it is not known: a runtime whose frames keep data at fixed
	// places from it (V8's function, HotSpot's method) reads them
	// there.
	FP     uint64
	Method Method // how this frame's caller was found
}

// Trace is an unwound stack and why it ends. Err says more when Stop is
// StopMemory, StopUnsupported or StopBadCFI.
type Trace struct {
	Frames []Frame
	Stop   Stop
	Err    error
	// Read are the words of memory the walk read, in order, when
	// LogReads was set before it: with the registers it began from and
	// the unwinding tables, all that its result depends on, so that a
	// caller may take a walk's result again for a sample whose words
	// there are the same (a thread sampled in the same call, again and
	// again) without walking.
	Read     []Word
	LogReads bool
}

// Word is a word of memory a walk read.
type Word struct{ Addr, Value uint64 }

// Unwinder walks x86-64 user stacks. The zero value uses CFI and falls
// back to frame pointers where no FDE covers a PC.
//
// An Unwinder reuses a buffer across calls of Unwind: give each goroutine
// its own.
type Unwinder struct {
	frames []Frame // Unwind's scratch
	rows   *rowCache

	// FramePointersOnly ignores CFI: what a frame-pointer unwinder (perf
	// --call-graph fp, the kernel's own user-stack walk) would find.
	FramePointersOnly bool
}

// Unwind returns the PCs of the stack starting at regs: regs.PC, then
// return addresses as found on the stack (not adjusted to the call
// instruction). It stops after max frames.
func (u *Unwinder) Unwind(regs Regs, mem Memory, lookup Lookup, max int) []uint64 {
	tr := Trace{Frames: u.frames[:0]}
	u.walk(&tr, regs, mem, lookup, max)
	u.frames = tr.Frames
	pcs := make([]uint64, len(tr.Frames))
	for i, f := range tr.Frames {
		pcs[i] = f.PC
	}
	return pcs
}

// Trace unwinds like Unwind and also says how each caller was found and
// why the walk ended.
func (u *Unwinder) Trace(regs Regs, mem Memory, lookup Lookup, max int) Trace {
	var tr Trace
	tr.Frames = make([]Frame, 0, min(max, 16))
	u.walk(&tr, regs, mem, lookup, max)
	return tr
}

// TraceInto is Trace into tr, reusing its frames' storage: a caller that
// unwinds sample after sample allocates nothing once tr has grown.
func (u *Unwinder) TraceInto(tr *Trace, regs Regs, mem Memory, lookup Lookup, max int) {
	tr.Frames, tr.Stop, tr.Err, tr.Read = tr.Frames[:0], 0, nil, tr.Read[:0]
	u.walk(tr, regs, mem, lookup, max)
}

// regState is what the unwinder knows of the registers of one frame.
type regState struct {
	v     [RegAMD64RA + 1]uint64
	known uint32 // bit i: v[i] is valid
}

func (r *regState) get(i uint16) (uint64, bool) {
	if int(i) >= len(r.v) || r.known&(1<<i) == 0 {
		return 0, false
	}
	return r.v[i], true
}

func (r *regState) set(i int, v uint64) { r.v[i], r.known = v, r.known|1<<i }

func (u *Unwinder) walk(tr *Trace, regs Regs, mem Memory, lookup Lookup, max int) {
	var cur regState
	cur.set(RegAMD64RA, regs.PC)
	cur.set(RegAMD64RSP, regs.SP)
	cur.set(RegAMD64RBP, regs.FP)
	// The first frame's PC is where it was stopped; a caller's is a return
	// address, one past the call, which may be past the end of a noreturn
	// function's FDE: such frames are looked up at PC-1.
	precise := true
	// chained: cur's frame pointer was read from the frame-pointer chain
	// (the value the caller had on entry to a frame-pointer function),
	// not taken from the sampled registers or restored by CFI, where 0 is
	// just a value of a general register.
	chained := false
	var buf [8]byte
	// A sample's stack copy is read in place: through ReadAt, each word
	// was a call through the interface and a copy, the largest part of
	// the walk of a sample (perf on cpuwhy record).
	stack, inCopy := mem.(StackCopy)
	read := func(addr uint64) (uint64, error) {
		var v uint64
		if off := addr - stack.Base; inCopy && addr >= stack.Base && off < uint64(len(stack.Data)) && uint64(len(stack.Data))-off >= 8 {
			v = binary.LittleEndian.Uint64(stack.Data[off:])
		} else {
			if _, err := mem.ReadAt(buf[:], addr); err != nil {
				return 0, err
			}
			v = binary.LittleEndian.Uint64(buf[:])
		}
		if tr.LogReads {
			tr.Read = append(tr.Read, Word{addr, v})
		}
		return v, nil
	}
	for {
		pc, sp := cur.v[RegAMD64RA], cur.v[RegAMD64RSP]
		if len(tr.Frames) >= max {
			tr.Stop = StopMaxFrames
			return
		}
		lookupPC := pc
		if !precise {
			lookupPC--
		}
		table, bias, mapped := lookup(lookupPC)
		// A first PC outside any mapping is still worth reporting (code
		// unmapped since); a return address there is garbage.
		if !mapped && len(tr.Frames) > 0 {
			tr.Stop = StopUnmapped
			return
		}
		fp, _ := cur.get(RegAMD64RBP)
		tr.Frames = append(tr.Frames, Frame{PC: pc, SP: sp, FP: fp})
		frame := &tr.Frames[len(tr.Frames)-1]
		var row Row
		err := ErrNoFDE
		if table != nil && !u.FramePointersOnly {
			row, err = u.rowAt(table, lookupPC-bias)
		}
		var next regState
		switch {
		case err == nil:
			frame.Method = MethodCFI
			var stop Stop
			next, stop, err = applyRow(&row, &cur, read)
			if stop != StopNone {
				frame.Method = MethodNone
				tr.Stop, tr.Err = stop, err
				return
			}
			precise = row.Signal
			chained = false
		case errors.Is(err, ErrNoFDE):
			if fp, _ := cur.get(RegAMD64RBP); chained && fp == 0 {
				// The callee saved a frame pointer of 0: this frame is
				// the deepest (Go's goroutines end so, at
				// runtime.goexit, which has no CFI in a stripped binary).
				frame.Method = MethodNone
				tr.Stop = StopZeroFP
				return
			}
			frame.Method = MethodFramePointer
			var stop Stop
			next, stop, err = framePointerStep(&cur, read)
			if stop != StopNone {
				frame.Method = MethodNone
				tr.Stop, tr.Err = stop, err
				return
			}
			precise = false
			chained = true
		default:
			tr.Stop, tr.Err = StopBadCFI, err
			if errors.Is(err, ErrUnsupported) || errors.Is(err, ErrTooComplex) {
				tr.Stop = StopUnsupported
			}
			return
		}
		if next.v[RegAMD64RSP] <= sp {
			frame.Method = MethodNone
			tr.Stop = StopNoProgress
			return
		}
		if next.v[RegAMD64RA] == 0 {
			frame.Method = MethodNone
			tr.Stop = StopZeroRA
			return
		}
		cur = next
	}
}

// applyRow computes the caller's registers from a CFI row. A Stop other
// than StopNone ends the walk.
func applyRow(row *Row, cur *regState, read func(uint64) (uint64, error)) (regState, Stop, error) {
	var cfa uint64
	switch row.CFA.Kind {
	case CFARegOffset, CFAPLT:
		base, ok := cur.get(row.CFA.Reg)
		if !ok {
			return regState{}, StopUnsupported, fmt.Errorf("CFA based on register %d, which is lost", row.CFA.Reg)
		}
		cfa = base + uint64(row.CFA.Offset)
		if row.CFA.Kind == CFAPLT && cur.v[RegAMD64RA]&15 >= uint64(row.CFA.Threshold) {
			cfa += 8
		}
	default:
		return regState{}, StopUnsupported, errors.New("CFA is a DWARF expression")
	}
	var next regState
	for i := 0; i < len(next.v); i++ {
		rule := row.Regs[i]
		switch rule.Kind {
		case RuleSame:
			if i != RegAMD64RA {
				if v, ok := cur.get(uint16(i)); ok {
					next.set(i, v)
				}
			}
		case RuleOffset:
			v, err := read(cfa + uint64(rule.Offset))
			if err != nil {
				if i == RegAMD64RA {
					return regState{}, StopMemory, err
				}
				continue // lost, but only a problem if needed
			}
			next.set(i, v)
		case RuleValOffset:
			next.set(i, cfa+uint64(rule.Offset))
		case RuleRegister:
			if v, ok := cur.get(rule.Reg); ok {
				next.set(i, v)
			}
		}
	}
	switch row.Regs[RegAMD64RA].Kind {
	case RuleUndefined:
		return regState{}, StopOutermost, nil
	case RuleOffset, RuleValOffset, RuleRegister:
		if next.known&(1<<RegAMD64RA) == 0 {
			return regState{}, StopUnsupported, errors.New("return address register is lost")
		}
	default:
		return regState{}, StopUnsupported, errors.New("return address rule not supported")
	}
	next.set(RegAMD64RSP, cfa)
	return next, StopNone, nil
}

// framePointerStep finds the caller from the frame pointer: [FP] is the
// caller's FP and [FP+8] the return address, as the push rbp; mov rsp,rbp
// prologue leaves them.
func framePointerStep(cur *regState, read func(uint64) (uint64, error)) (regState, Stop, error) {
	fp, ok := cur.get(RegAMD64RBP)
	sp := cur.v[RegAMD64RSP]
	if !ok || fp == 0 || fp%8 != 0 || fp < sp {
		return regState{}, StopNoInfo, nil
	}
	callerFP, err := read(fp)
	if err != nil {
		return regState{}, StopMemory, err
	}
	ra, err := read(fp + 8)
	if err != nil {
		return regState{}, StopMemory, err
	}
	var next regState
	next.set(RegAMD64RBP, callerFP)
	next.set(RegAMD64RA, ra)
	next.set(RegAMD64RSP, fp+16)
	return next, StopNone, nil
}

// rowCacheSize is how many rows an Unwinder keeps (about 800 bytes each):
// a sampler unwinds the same few hundred return addresses again and again,
// and looking up and evaluating their CFA programs each time was most of
// the unwinding (a third of it in a profile of cpuwhy record at 99 Hz).
const (
	rowCacheBits = 9
	rowCacheSize = 1 << rowCacheBits
)

// rowCache holds evaluated rows by table and address, direct-mapped. A
// Table does not change once built, and the cache's pointer keeps it
// from being freed and another built at its address.
type rowCache [rowCacheSize]struct {
	table *Table
	addr  uint64
	row   Row
}

// rowAt is table.RowAt(addr), from the cache when it holds it.
func (u *Unwinder) rowAt(table *Table, addr uint64) (Row, error) {
	if u.rows == nil {
		u.rows = new(rowCache)
	}
	e := &u.rows[(addr*0x9E3779B97F4A7C15)>>(64-rowCacheBits)]
	if e.table == table && e.addr == addr {
		return e.row, nil
	}
	row, err := table.RowAt(addr)
	if err == nil {
		e.table, e.addr, e.row = table, addr, row
	}
	return row, err
}
