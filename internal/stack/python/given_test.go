package python

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/stack"
	"github.com/cpuwhy/cpuwhy/internal/stack/python/ebpf"
)

// record encodes a chain as the kernel's walk writes it (struct
// py_record).
func record(c ebpf.Chain) []byte {
	b := make([]byte, ebpf.RecordSize)
	le := binary.LittleEndian
	le.PutUint64(b, c.Time)
	le.PutUint32(b[8:], uint32(c.TID))
	le.PutUint16(b[12:], uint16(len(c.Frames)))
	le.PutUint16(b[14:], uint16(c.Flags))
	for i, f := range c.Frames {
		o := b[32+32*i:]
		le.PutUint64(o, f.Addr)
		le.PutUint64(o[8:], f.Code)
		le.PutUint64(o[16:], f.Instr)
		o[24], o[25] = f.Owner, f.IsEntry
	}
	return b
}

// TestKernelChain: a stack given the chain read with it (a syscall's,
// walked by frame pointers that stopped in the interpreter's C code)
// gets its Python frames outermost, even with no eval loop frame and a
// single address; the frames a lost walk found in no object go; the
// chain serves the next Expand only; a record that cannot be parsed, or
// one of a walk that failed, leaves the stack as it was.
func TestKernelChain(t *testing.T) {
	for minor, l := range layouts {
		m, r := image(l)
		raw, more, err := r.rawFrames(imgThread, 0, nil)
		if err != nil || more || len(raw) != 1 {
			t.Fatalf("3.%d: the image's chain: %v, %v, %v", minor, raw, more, err)
		}
		in := &instance{r: reader{mem: m, l: l, types: r.types}, codes: newCodeCache(maxCodes), module: "/usr/lib/libpython3.so"}
		native := func() []stack.Frame {
			return []stack.Frame{
				{Kind: stack.Native, Function: "recv", Module: "/usr/lib/libc.so.6"},
				{Kind: stack.Native, Function: "sock_recv", Module: "/usr/lib/libpython3.so"},
				{Kind: stack.Native, Module: stack.UnknownModule},
				{Kind: stack.Native, Function: "main", Module: "/usr/bin/python3"},
			}
		}
		names := func(fs []stack.Frame) []string {
			var out []string
			for _, f := range fs {
				out = append(out, f.String())
			}
			return out
		}
		want := []string{native()[0].String(), native()[1].String(), "Indexer.rebuild (index.py:12)"}

		in.KernelChain(record(ebpf.Chain{TID: 7, Frames: raw}))
		if got := names(in.Expand(7, []uint64{1}, native())); !slices.Equal(got, want) {
			t.Errorf("3.%d: %q, want %q", minor, got, want)
		}
		if got := in.Expand(7, []uint64{1}, native()); len(got) != 4 {
			t.Errorf("3.%d: the chain served a second stack: %q", minor, names(got))
		}
		for name, rec := range map[string][]byte{
			"short":   record(ebpf.Chain{Frames: raw})[:20],
			"fault":   record(ebpf.Chain{Flags: ebpf.Fault, Frames: raw}),
			"none":    nil,
			"looping": record(ebpf.Chain{Frames: []ebpf.Frame{raw[0], raw[0]}}),
		} {
			in.KernelChain(rec)
			if got := in.Expand(7, []uint64{1}, native()); len(got) != 4 || slices.ContainsFunc(got, func(f stack.Frame) bool { return f.Kind == Kind }) {
				t.Errorf("3.%d: %s record: %q", minor, name, names(got))
			}
		}
		if in.givenBad != 1 || in.failed != 1 {
			t.Errorf("3.%d: %d records not parsed (want 1), %d chains failed (want 1, the looping one)", minor, in.givenBad, in.failed)
		}
	}
}

// TestGILState: the GIL's state is read from last_holder and locked, in
// every layout; a locked that is neither 0, 1 nor -1 (not yet made) is
// not a GIL's, and a GIL out of memory is an error.
func TestGILState(t *testing.T) {
	for minor, l := range layouts {
		b := make([]byte, 64)
		binary.LittleEndian.PutUint64(b[l.GILLastHolder:], 0x7000)
		for _, c := range []struct {
			locked  int32
			held    bool
			garbage bool
		}{{1, true, false}, {0, false, false}, {-1, false, false}, {2, false, true}, {0x41414141, false, true}} {
			binary.LittleEndian.PutUint32(b[l.GILLocked:], uint32(c.locked))
			r := reader{mem: fakeMemory{base: 0x1000, data: b}, l: l}
			holder, held, err := r.gilState(0x1000)
			switch {
			case c.garbage && err == nil:
				t.Errorf("3.%d: locked %d read as a GIL", minor, c.locked)
			case !c.garbage && (err != nil || held != c.held || holder != 0x7000):
				t.Errorf("3.%d: locked %d: holder %#x, held %v, %v", minor, c.locked, holder, held, err)
			}
		}
		r := reader{mem: fakeMemory{base: 0x1000, data: b}, l: l}
		if _, _, err := r.gilState(0x1000 + 60); err == nil {
			t.Errorf("3.%d: a GIL past the end of memory was read", minor)
		}
	}
}

// TestCountGIL: without a timer, the GIL is counted at the samples, from
// the kernel's reading or read live, by the thread its holder's thread
// state is matched to; garbage is a failed reading, and a process whose
// GIL was never read says why.
func TestCountGIL(t *testing.T) {
	l := layouts[12]
	b := make([]byte, 64)
	binary.LittleEndian.PutUint64(b[l.GILLastHolder:], 0x7000)
	binary.LittleEndian.PutUint32(b[l.GILLocked:], 1)
	in := &instance{r: reader{mem: fakeMemory{base: 0x1000, data: b}, l: l}, gil: 0x1000, tidOf: map[uint64]int{0x7000: 41, 0x8000: 42}, refreshed: time.Now()}
	in.countGIL(&gilReading{holder: 0x8000, locked: 1, read: true})
	in.countGIL(&gilReading{holder: 0x8000, locked: 0, read: true})
	in.countGIL(&gilReading{holder: 0x9000, locked: 1, read: true}) // no thread known
	in.countGIL(&gilReading{holder: 0x8000, locked: 7, read: true}) // garbage
	in.countGIL(nil)                                                // read live: 0x7000
	h := in.LockHolders()
	if h.Every != 0 || h.Readings != 4 || h.Free != 1 || h.Unknown != 1 || h.Held[41] != 1 || h.Held[42] != 1 || in.gilCount.failed != 1 || h.Err != "" {
		t.Errorf("counted %+v, %d failed", h, in.gilCount.failed)
	}
	none := &instance{r: reader{l: l}, gilCount: gilCount{err: fmt.Errorf("no interpreter yet")}}
	if h := none.LockHolders(); h.Readings != 0 || !strings.Contains(h.Err, "could not be found: no interpreter yet") {
		t.Errorf("a GIL not found: %+v", h)
	}
}
