package python

import (
	"fmt"
	"sync"

	"github.com/cpuwhy/cpuwhy/internal/stack/python/ebpf"
)

// Chains read in the kernel are matched to samples by thread and time.
const (
	// maxChains bounds the chains kept for samples not yet named: the
	// sampler hands samples over up to a drain of its rings late (about
	// 80 ms at 99 Hz), and the worker that names them lags by at most
	// its queue (256 samples, cpuprofile's queueLen). At most 8 MiB, of
	// chains cut at 128 Python frames; 660 KiB for chains of 20.
	maxChains = 1024
	// chainLag is how far from its sample's time a chain may be
	// stamped: the program runs in the interrupt that takes the sample,
	// microseconds from the kernel's stamp of it (after it on Linux 6.18,
	// where the overflow handler prepares the sample before it runs the
	// program: 2-3 us measured; the other way on kernels that stamp after
	// it). A chain further away is another sample's: at 99 Hz the
	// thread's next is 10 ms away, at 1 kHz 1 ms.
	chainLag = 200_000 // ns
	// chainDisorder is how far past an older chain a newer one may sit in
	// the ring buffer: chains of different CPUs are reserved in about
	// the order they were taken.
	chainDisorder = 50_000_000 // ns
)

// kernelChains are the chains the kernel read at samples, the latest
// maxChains, for the samples still to be named.
type kernelChains struct {
	w      *ebpf.Walker
	ring   []storedChain
	next   int // where the next chain goes
	newest uint64

	found, missed, bad int   // samples named from a chain, or not; records refused
	readErr            error // of reading the ring buffer, or of telling the threads

	// The sampler attaches the program on its own goroutine, while
	// samples are named on another.
	mu         sync.Mutex
	attachErr  error
	unattached int // events the program could not be attached to
}

type storedChain struct {
	time   uint64
	tid    int
	flags  int
	frames []ebpf.Frame
	gil    gilReading // the GIL's state read with the chain
}

// ReadAtEvents loads the program that reads each sample's Python frame
// chain in the kernel; from then on the instance does not need samples
// fresh (ReadsLiveState is false). An error says it cannot be loaded:
// chains are read live, as before.
func (in *instance) ReadAtEvents() error {
	if in.kernel != nil {
		return nil
	}
	if in.noKernel {
		return fmt.Errorf("the chains of Python frames are read from the live process, not in the kernel at each sample: turned off (%s=1 or Runtime.LiveOnly)", EnvNoBPF)
	}
	l := kernelLayout(in.r.l)
	if in.gil != 0 {
		l.GIL = in.gil + uint64(in.r.l.GILLastHolder)
	}
	w, err := ebpf.Load(l)
	if err != nil {
		return fmt.Errorf("reading CPython 3.%d frames in the kernel: %w", in.r.l.Minor, err)
	}
	in.kernel = &kernelChains{w: w, ring: make([]storedChain, 0, maxChains)}
	in.pushThreads()
	return nil
}

// kernelLayout is what the kernel's walk reads of a version's layout.
func kernelLayout(l Layout) ebpf.Layout {
	return ebpf.Layout{
		ThreadFrame: l.ThreadFrame, CFrameCurrent: l.CFrameCurrent, ThreadNativeID: l.ThreadNativeID,
		FrameBack: l.FrameBack, FrameCode: l.FrameCode, FrameInstr: l.FrameInstr,
		FrameOwner: l.FrameOwner, FrameIsEntry: l.FrameIsEntry, OwnedByCStack: l.OwnedByCStack,
		// The fields read of a frame, the last of them 8 bytes long.
		FrameRead: max(l.FrameBack, l.FrameCode, l.FrameInstr, l.FrameOwner, l.FrameIsEntry) + 8,
	}
}

// gilReading is the GIL's state as the kernel's walk read it: its
// last_holder and locked fields, raw; read says they were read.
type gilReading struct {
	holder uint64
	locked int32
	read   bool
}

// AttachEvent attaches the program to one of the sampler's events.
func (in *instance) AttachEvent(fd int) error {
	if in.kernel == nil {
		return nil
	}
	k := in.kernel
	err := k.w.Attach(fd)
	if err != nil {
		k.mu.Lock()
		k.unattached++
		if k.attachErr == nil {
			k.attachErr = err
		}
		k.mu.Unlock()
	}
	return err
}

// SampleTime says when the sample the next Expand names was taken.
// The chains the kernel read are taken from its ring buffer here, for
// every sample (not only those Expand reads a chain for): a thread that
// runs C code alone, outside the eval loop, must not fill it.
func (in *instance) SampleTime(t uint64) {
	in.at = t
	if in.kernel != nil {
		in.kernel.drain(t)
	}
}

// pushThreads tells the program the thread states last read.
func (in *instance) pushThreads() {
	if in.kernel == nil {
		return
	}
	threads := make(map[int]ebpf.Thread, len(in.byTID))
	for tid, t := range in.byTID {
		threads[tid] = ebpf.Thread{TState: t.addr, Native: t.native}
	}
	if err := in.kernel.w.SetThreads(threads); err != nil && in.kernel.readErr == nil {
		in.kernel.readErr = err // its samples are read live: missed
	}
}

// drain keeps the chains of the ring buffer, unless one stamped later
// than the sample of time t could be (t+chainLag) is kept already: the
// sample's chain was written before the sample reached the perf ring, so
// it is kept too.
func (k *kernelChains) drain(t uint64) {
	if k.newest > t+chainLag {
		return
	}
	bad, err := k.w.Read(k.add)
	k.bad += bad
	if err != nil && k.readErr == nil {
		k.readErr = err
	}
}

// take returns the chain the kernel read at the sample of thread tid
// taken at t, or nil: no chain (a thread the program did not know yet, a
// ring buffer that was full), or one the program could not read whole.
func (k *kernelChains) take(tid int, t uint64) *storedChain {
	c := k.find(tid, t)
	if c == nil || c.flags&(ebpf.Fault|ebpf.Moved) != 0 {
		k.missed++
		return nil
	}
	k.found++
	return c
}

// add keeps a chain, in place of the oldest when maxChains are kept.
func (k *kernelChains) add(c *ebpf.Chain) {
	var s *storedChain
	if len(k.ring) < cap(k.ring) {
		k.ring = append(k.ring, storedChain{})
		s = &k.ring[len(k.ring)-1]
	} else {
		s = &k.ring[k.next]
	}
	k.next = (k.next + 1) % cap(k.ring)
	s.time, s.tid, s.flags = c.Time, c.TID, c.Flags
	s.gil = gilReading{holder: c.GILHolder, locked: c.GILLocked, read: c.GILRead}
	s.frames = append(s.frames[:0], c.Frames...)
	k.newest = max(k.newest, c.Time)
}

// find is the chain of thread tid stamped nearest t, within chainLag of
// it either way.
func (k *kernelChains) find(tid int, t uint64) *storedChain {
	n := len(k.ring)
	var best *storedChain
	var bestDist uint64
	for i := 1; i <= n; i++ {
		c := &k.ring[(k.next-i+n)%n]
		if c.time > t+chainLag {
			continue // a later sample's
		}
		if t > c.time+chainLag+chainDisorder {
			break // older chains are older still
		}
		if c.tid != tid {
			continue
		}
		dist := max(c.time, t) - min(c.time, t)
		if dist <= chainLag && (best == nil || dist < bestDist) {
			best, bestDist = c, dist
		}
	}
	return best
}

// notes says what the kernel's reading left to the live one.
func (k *kernelChains) notes() []string {
	var notes []string
	k.mu.Lock()
	if k.attachErr != nil {
		notes = append(notes, fmt.Sprintf("the program reading Python frame chains in the kernel could not be attached to %d sampling events, whose chains were read later, from the live process (first: %v)", k.unattached, k.attachErr))
	}
	k.mu.Unlock()
	if k.readErr != nil {
		notes = append(notes, fmt.Sprintf("reading Python frame chains in the kernel: %v", k.readErr))
	}
	if full := k.w.Full(); full > 0 {
		notes = append(notes, fmt.Sprintf("%d Python frame chains read in the kernel found its ring buffer full", full))
	}
	if k.missed > 0 {
		notes = append(notes, fmt.Sprintf("%d of %d samples in the interpreter had no Python frame chain read in the kernel at the sample (a thread not yet known, a frame not in memory): their chains were read later, from the live process", k.missed, k.missed+k.found))
	}
	if k.bad > 0 {
		notes = append(notes, fmt.Sprintf("%d records of the kernel's Python frame chains could not be parsed", k.bad))
	}
	return notes
}
