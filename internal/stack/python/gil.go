package python

import (
	"fmt"
	"maps"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/stack"
)

// The GIL's state is read at each sample: which thread state held it
// last (last_holder) and whether it is held (locked). A thread runs
// Python only while it holds the GIL, and gives it up at the end of its
// switch interval (5 ms) when another asks for it, or in a blocking call:
// counted over the window's samples, the holder says which thread the
// others wait for.

// gilAddress finds the GIL of the main interpreter of the _PyRuntime at
// runtime: inside it (3.8-3.11), or where the interpreter's ceval.gil
// points (3.12+; the GIL is the interpreter's own unless it was made
// with one of its own). 0 with an error when it cannot be found.
func (r *reader) gilAddress(runtime uint64) (uint64, error) {
	l := r.l
	if l.RuntimeGIL >= 0 {
		return runtime + uint64(l.RuntimeGIL), nil
	}
	if l.InterpGIL < 0 {
		return 0, fmt.Errorf("the layout of 3.%d does not say where the GIL is", l.Minor)
	}
	interp, err := r.ptr(runtime + uint64(l.RuntimeInterpretersHead))
	if err != nil {
		return 0, fmt.Errorf("reading the interpreters of _PyRuntime at %#x: %w", runtime, err)
	}
	if interp == 0 {
		return 0, fmt.Errorf("no interpreter yet")
	}
	gil, err := r.ptr(interp + uint64(l.InterpGIL))
	if err != nil {
		return 0, fmt.Errorf("reading the GIL of interpreter %#x: %w", interp, err)
	}
	if gil == 0 {
		return 0, fmt.Errorf("%w: interpreter %#x has no GIL", errBad, interp)
	}
	return gil, nil
}

// gilSpan is the bytes of the GIL read, from last_holder through locked.
func (l Layout) gilSpan() int { return l.GILLocked - l.GILLastHolder + 4 }

// gilState reads the GIL at gil: its last holder and whether it is held.
func (r *reader) gilState(gil uint64) (holder uint64, locked bool, err error) {
	l := r.l
	if l.GILLastHolder < 0 || l.GILLocked < l.GILLastHolder+8 {
		return 0, false, fmt.Errorf("the layout of 3.%d has no GIL", l.Minor)
	}
	b, err := r.read(gil+uint64(l.GILLastHolder), l.gilSpan())
	if err != nil {
		return 0, false, fmt.Errorf("reading the GIL at %#x: %w", gil, err)
	}
	return parseGIL(b, l)
}

// parseGIL reads the GIL's last holder and lock from its bytes from
// last_holder on: locked is 0 or 1 (-1 before the GIL was first made);
// any other value is not a GIL.
func parseGIL(b []byte, l Layout) (holder uint64, locked bool, err error) {
	if len(b) < l.gilSpan() {
		return 0, false, fmt.Errorf("%w: %d bytes of a GIL", errBad, len(b))
	}
	holder = u64(b, 0)
	locked, err = lockedOf(int32(u32(b, l.GILLocked-l.GILLastHolder)))
	return holder, locked, err
}

// lockedOf reads the GIL's locked field: 0 or 1 (-1 before the GIL was
// first made); any other value is not a GIL's.
func lockedOf(v int32) (bool, error) {
	switch v {
	case 0, -1:
		return false, nil
	case 1:
		return true, nil
	}
	return false, fmt.Errorf("%w: the GIL's locked is %d", errBad, v)
}

// gilCount is the GIL's state counted over the samples.
type gilCount struct {
	readings, free, unknown int
	held                    map[int]int // by the host's thread id
	failed                  int         // samples whose reading of it failed
	err                     error       // why it is not read, or the first failure
}

// countGIL counts the GIL's state at a sample: from the chain the kernel
// read with it (g.read), else read now, when the chain was.
func (in *instance) countGIL(g *gilReading) {
	if in.gil == 0 {
		return
	}
	var holder uint64
	var locked bool
	var err error
	if g != nil && g.read {
		holder = g.holder
		locked, err = lockedOf(g.locked)
	} else {
		holder, locked, err = in.r.gilState(in.gil)
	}
	c := &in.gilCount
	if err != nil {
		c.failed++
		if c.err == nil {
			c.err = err
		}
		return
	}
	c.readings++
	if !locked {
		c.free++
		return
	}
	tid, ok := in.tidOf[holder]
	if !ok && time.Since(in.refreshed) >= rereadInterval && in.refresh() {
		tid, ok = in.tidOf[holder] // a thread started since
	}
	if !ok {
		c.unknown++ // a thread state not known at the last reading of them
		return
	}
	if c.held == nil {
		c.held = map[int]int{}
	}
	c.held[tid]++
}

// gilWatch is the GIL read on a timer (WatchLock): the thread states
// that held it, by address, mapped to threads when counted.
type gilWatch struct {
	every                    time.Duration
	stop, done               chan struct{}
	held                     map[uint64]int
	readings, free, overflow int
	failed                   int
	err                      error
}

// WatchLock reads the GIL every interval until stop is called, on a
// goroutine of its own with a reader of its own (the process's memory
// is read by process_vm_readv, which keeps no state): samples are of
// threads on a CPU, and a thread that keeps the GIL while it sleeps (a C
// call that does not release it) is seen only by a timer. At most
// maxThreads holders are told apart; the rest are counted as unknown.
func (in *instance) WatchLock(interval time.Duration) (stop func()) {
	if in.gil == 0 || interval <= 0 {
		return func() {}
	}
	w := &gilWatch{every: interval, stop: make(chan struct{}), done: make(chan struct{}), held: map[uint64]int{}}
	r := reader{mem: in.r.mem, l: in.r.l}
	gil := in.gil
	go func() {
		defer close(w.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			holder, locked, err := r.gilState(gil)
			switch {
			case err != nil:
				w.failed++
				if w.err == nil {
					w.err = err
				}
			case !locked:
				w.readings++
				w.free++
			case len(w.held) < maxThreads || w.held[holder] > 0:
				w.readings++
				w.held[holder]++
			default:
				w.readings++
				w.overflow++
			}
		}
	}()
	var once bool
	return func() {
		if once {
			return
		}
		once = true
		close(w.stop)
		<-w.done
		in.watched = w
	}
}

// LockHolders is the GIL's holders over the window (stack.LockSampler):
// as a timer read them (WatchLock), else at the samples named.
func (in *instance) LockHolders() stack.LockHolders {
	if w := in.watched; w != nil && w.readings > 0 {
		return in.watchedHolders(w)
	}
	c := in.gilCount
	h := stack.LockHolders{Lock: "the GIL", Readings: c.readings, Free: c.free, Unknown: c.unknown, Held: maps.Clone(c.held)}
	switch {
	case in.gil == 0:
		h.Err = fmt.Sprintf("the GIL of CPython 3.%d could not be found: %v", in.r.l.Minor, c.err)
	case c.readings == 0 && c.err != nil:
		h.Err = fmt.Sprintf("the GIL of CPython 3.%d could not be read at any of %d samples: %v", in.r.l.Minor, c.failed, c.err)
	case c.readings == 0:
		h.Err = "no sample ran Python code"
	}
	return h
}

// watchedHolders counts the timer's readings by thread: the holders'
// thread states are matched to the threads known now, read again once
// when one is not (a thread started since the last reading).
func (in *instance) watchedHolders(w *gilWatch) stack.LockHolders {
	h := stack.LockHolders{Lock: "the GIL", Every: w.every, Readings: w.readings, Free: w.free, Unknown: w.overflow, Held: map[int]int{}}
	for ts := range w.held {
		if _, ok := in.tidOf[ts]; !ok && !in.gone {
			in.refresh()
			break
		}
	}
	for ts, n := range w.held {
		if tid, ok := in.tidOf[ts]; ok {
			h.Held[tid] += n
		} else {
			h.Unknown += n // a thread that has exited since
		}
	}
	return h
}
