package ebpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"

	"github.com/cpuwhy/cpuwhy/internal/sys"
)

// MaxSteps is the most frames the program walks of a chain (MAX_STEPS);
// before 3.12, without shim frames, it stops after MaxPython+1.
const (
	MaxSteps  = 256
	MaxPython = 128
)

// MaxThreads is the most threads the program knows the thread state of.
const MaxThreads = 4096

// Flags of a Chain (CHAIN_* in pyframes.bpf.c).
const (
	More  = 1 << iota // the chain goes on past MaxSteps frames
	Fault             // a read failed: Frames are those before it
	Moved             // the thread state is another thread's now
)

// ErrNotSupported is the error of a host that cannot run the program.
var ErrNotSupported = sys.ErrNotSupported

// Layout is where the walk finds what it reads, by offset: -1 for a field
// the version lacks. OwnedByCStack is the owner of a shim frame (3.12+;
// -1). FrameRead is the bytes read of each frame, which must hold every
// frame field read (at most 128). GIL is the address of the GIL's
// last_holder, whose locked (an int) is 8 bytes on, read with each chain
// (Chain.GILRead); 0: not read.
type Layout struct {
	ThreadFrame, CFrameCurrent, ThreadNativeID                 int
	FrameBack, FrameCode, FrameInstr, FrameOwner, FrameIsEntry int
	OwnedByCStack                                              int
	FrameRead                                                  int
	GIL                                                        uint64
}

// Value is l as the programs' struct py_layout (bpf/pywalk.h) holds it:
// what a program that links the walk in sets its layout variable to.
func (l Layout) Value() any {
	return pyframesPyLayout{
		ThreadFrame: int32(l.ThreadFrame), CframeCurrent: int32(l.CFrameCurrent), ThreadNativeId: int32(l.ThreadNativeID),
		FrameBack: int32(l.FrameBack), FrameCode: int32(l.FrameCode), FrameInstr: int32(l.FrameInstr),
		FrameOwner: int32(l.FrameOwner), FrameIsEntry: int32(l.FrameIsEntry), OwnedByCstack: int32(l.OwnedByCStack),
		FrameRead: uint32(l.FrameRead), Gil: l.GIL,
	}
}

// Check says whether the walk can use l: it reads at most 128 bytes of a
// frame.
func (l Layout) Check() error {
	if l.FrameRead <= 0 || l.FrameRead > 128 {
		return fmt.Errorf("reading %d bytes of a frame: at most 128", l.FrameRead)
	}
	return nil
}

// Thread is what the program is told of a thread: its thread state, and
// the native_thread_id that must still be in it (0: not checked).
type Thread struct {
	TState, Native uint64
}

// Frame is one frame of a chain, raw: its address, and the fields read of
// it. Instr is the 8 bytes at the layout's FrameInstr (f_lasti is the low
// 4 on 3.8-3.10).
type Frame struct {
	Addr, Code, Instr uint64
	Owner, IsEntry    uint8
}

// Chain is the frame chain of one thread at one sample, innermost first.
type Chain struct {
	Time   uint64 // CLOCK_MONOTONIC, just before the sample's own time
	TID    int    // the host's
	Flags  int
	Frames []Frame
	// The GIL's state read with the chain, when GILRead (the layout's
	// GIL was set and the read did not fail): its last holder and its
	// locked field, as the target's memory had them.
	GILHolder uint64
	GILLocked int32
	GILRead   bool
}

// Walker is the program, loaded, and its ring buffer.
type Walker struct {
	objs pyframesObjects
	ring *ringbuf.Reader
	rec  ringbuf.Record
	prog int
}

// ringPerCPU is the ring buffer's room per CPU, and maxRing its most: it
// is drained when samples are handed over, when a perf ring is half full
// (8 samples of a CPU at the default stack copy, 80 ms at 99 Hz); a chain
// of 20 frames takes 664 bytes, one cut at 128 Python frames 4 KiB (8 KiB
// on 3.12+, with a shim frame per call), so 128 KiB holds 16 of the
// largest.
const (
	ringPerCPU = 128 << 10
	minRing    = 256 << 10
	maxRing    = 8 << 20
)

// Load loads the program for a layout.
func Load(l Layout) (*Walker, error) {
	if err := l.Check(); err != nil {
		return nil, err
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, notSupported("raising RLIMIT_MEMLOCK for BPF maps", err)
	}
	spec, err := loadPyframes()
	if err != nil {
		return nil, err // the embedded object is corrupt: a bug, not the host
	}
	if err := spec.Variables["L"].Set(l.Value()); err != nil {
		return nil, fmt.Errorf("setting the layout: %w", err)
	}
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, notSupported("counting the CPUs", err)
	}
	size := uint32(minRing)
	for size < uint32(min(ncpu*ringPerCPU, maxRing)) {
		size *= 2
	}
	spec.Maps["chains"].MaxEntries = size
	w := &Walker{}
	// No verifier log: on a refusal, cilium/ebpf would load the program
	// again to get one, and a walk the verifier gives up on after a
	// million instructions took 13 s of CPU to log.
	opts := &ebpf.CollectionOptions{Programs: ebpf.ProgramOptions{LogDisabled: true}}
	if err := spec.LoadAndAssign(&w.objs, opts); err != nil {
		return nil, notSupported("loading the BPF program", err)
	}
	if w.ring, err = ringbuf.NewReader(w.objs.Chains); err != nil {
		w.objs.Close()
		return nil, notSupported("reading the BPF ring buffer", err)
	}
	w.ring.SetDeadline(time.Unix(1, 0)) // in the past: Read never waits
	w.prog = w.objs.OnSample.FD()
	return w, nil
}

// Attach attaches the program to a perf event: it runs at each of its
// samples until the event is closed.
func (w *Walker) Attach(eventFD int) error {
	return sys.SetPerfEventBPF(eventFD, w.prog)
}

// SetThreads makes threads (by the host's thread id) the threads the
// program walks the chains of, in place of those it had, at most
// MaxThreads of them.
func (w *Walker) SetThreads(threads map[int]Thread) error {
	var stale []uint32
	var k uint32
	var v pyframesPyThread
	it := w.objs.Threads.Iterate()
	for it.Next(&k, &v) {
		if t, ok := threads[int(k)]; !ok || t != (Thread{v.Tstate, v.Native}) {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("listing the threads of the BPF program: %w", err)
	}
	for _, k := range stale {
		if err := w.objs.Threads.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("forgetting thread %d: %w", k, err)
		}
	}
	n := 0
	for tid, t := range threads {
		if n == MaxThreads {
			break
		}
		n++
		if err := w.objs.Threads.Update(uint32(tid), pyframesPyThread{Tstate: t.TState, Native: t.Native}, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("telling the BPF program of thread %d: %w", tid, err)
		}
	}
	return nil
}

// Read hands over each chain the ring buffer holds, without waiting; c is
// valid during the call only. A record that is not a chain (which the
// kernel's program does not write) is counted in bad.
func (w *Walker) Read(fn func(c *Chain)) (bad int, err error) {
	var c Chain
	for {
		if err := w.ring.ReadInto(&w.rec); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return bad, nil
			}
			return bad, fmt.Errorf("reading the BPF ring buffer: %w", err)
		}
		if err := ParseChain(w.rec.RawSample, &c); err != nil {
			bad++
			continue
		}
		fn(&c)
	}
}

// VerifiedInstructions is how many instructions the verifier went
// through to accept the program: the measure of its complexity, which
// grows with every path a walk's step may take.
func (w *Walker) VerifiedInstructions() (uint32, error) {
	info, err := w.objs.OnSample.Info()
	if err != nil {
		return 0, fmt.Errorf("reading the program's info: %w", err)
	}
	n, ok := info.VerifiedInstructions()
	if !ok {
		return 0, fmt.Errorf("the kernel does not say how many instructions it verified: %w", ErrNotSupported)
	}
	return n, nil
}

// Full is the number of chains the ring buffer had no room for.
func (w *Walker) Full() uint64 {
	var per []uint64
	if err := w.objs.Counters.Lookup(uint32(0), &per); err != nil {
		return 0
	}
	var n uint64
	for _, v := range per {
		n += v
	}
	return n
}

// Close unloads the program; events it is attached to hold it until they
// close.
func (w *Walker) Close() {
	w.ring.Close()
	w.objs.Close()
}

// Sizes of a record (struct py_record and struct py_frame): RecordSize
// is that of a whole one, as a map holding records keeps each.
const (
	headerSize = 32
	frameSize  = 32
	RecordSize = headerSize + MaxSteps*frameSize
)

// ParseChain parses a record of the ring buffer into c, reusing its
// Frames. The record is the kernel's, but its frames come from the
// target's memory: only their count is checked here, the rest by the
// caller as any chain.
func ParseChain(b []byte, c *Chain) error {
	if len(b) < headerSize {
		return fmt.Errorf("chain record of %d bytes: shorter than its header", len(b))
	}
	le := binary.LittleEndian // amd64 and arm64, the targets built
	n := int(le.Uint16(b[12:]))
	if n > MaxSteps || len(b) < headerSize+n*frameSize {
		return fmt.Errorf("chain record of %d bytes with %d frames (at most %d)", len(b), n, MaxSteps)
	}
	c.Time, c.TID, c.Flags = le.Uint64(b), int(le.Uint32(b[8:])), int(le.Uint16(b[14:]))
	c.GILHolder, c.GILLocked, c.GILRead = le.Uint64(b[16:]), int32(le.Uint32(b[24:])), le.Uint32(b[28:]) != 0
	c.Frames = c.Frames[:0]
	for i := range n {
		f := b[headerSize+i*frameSize:]
		c.Frames = append(c.Frames, Frame{Addr: le.Uint64(f), Code: le.Uint64(f[8:]), Instr: le.Uint64(f[16:]), Owner: f[24], IsEntry: f[25]})
	}
	return nil
}

// notSupported wraps a failure to load with the reason: one matching
// os.ErrPermission for want of privileges, else ErrNotSupported.
func notSupported(what string, err error) error {
	var verr *ebpf.VerifierError
	switch {
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("%s: not permitted (it needs CAP_BPF and CAP_PERFMON, or root): %w", what, err)
	case errors.As(err, &verr):
		return &sys.NotSupportedError{Feature: what + " (the verifier refused it)", Since: "5.8", Err: err}
	default:
		return &sys.NotSupportedError{Feature: what, Since: "5.8", Err: err}
	}
}
