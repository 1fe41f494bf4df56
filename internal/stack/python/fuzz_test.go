package python

import (
	"testing"

	"github.com/cpuwhy/cpuwhy/internal/stack"
	"github.com/cpuwhy/cpuwhy/internal/stack/python/ebpf"
)

// FuzzLineOf: any line table, any offset, gives a line, the function's
// first at worst.
func FuzzLineOf(f *testing.F) {
	f.Add(uint8(0), []byte{6, 0, 6, 2}, 10, 7)
	f.Add(uint8(1), []byte{6, 0, 6, 0x80}, 10, 7)
	f.Add(uint8(2), []byte{0x80 | 14<<3, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, 10, 3)
	f.Fuzz(func(t *testing.T, format uint8, table []byte, first, at int) {
		if first <= 0 {
			first = 1
		}
		if got := lineOf(lineFormat(format%3), table, first, at); got <= 0 {
			t.Fatalf("line %d", got)
		}
	})
}

// FuzzReader reads an interpreter made of the fuzzer's bytes in every
// layout, starting from a valid one: errors, never a panic, and the
// frames read are capped.
func FuzzReader(f *testing.F) {
	for _, l := range layouts {
		m, _ := image(l)
		f.Add(uint8(l.Minor), m.data)
	}
	f.Fuzz(func(t *testing.T, minor uint8, data []byte) {
		l, ok := layouts[int(minor)]
		if !ok {
			return
		}
		r := reader{mem: fakeMemory{base: imgBase, data: data}, l: l, types: objects{code: imgCodeType, str: imgStrType, bytes: imgBytesType}}
		names, _ := walk(&r)
		if len(names) > maxThreads*maxFrames {
			t.Fatalf("%d frames", len(names))
		}
		_ = r.check(symbols{runtime: imgRuntime, types: r.types})
		if gil, err := r.gilAddress(imgRuntime); err == nil {
			_, _, _ = r.gilState(gil)
		}
	})
}

// FuzzMerge: any native stack, any Python frames and bounds, merge
// keeps every Python frame and every native frame that is neither the
// eval loop's nor its glue.
func FuzzMerge(f *testing.F) {
	f.Add([]byte{0, 1, 2, 1, 3}, 3, []byte{1, 3}, true)
	f.Fuzz(func(t *testing.T, kinds []byte, npy int, bounds []byte, cut bool) {
		if len(kinds) > 64 || npy < 0 || npy > 64 {
			return
		}
		names := []string{"recv", evalFunction, "_PyFunction_Vectorcall", "sock_recv"}
		var frames []stack.Frame
		for _, k := range kinds {
			frames = append(frames, stack.Frame{Kind: stack.Native, Function: names[int(k)%len(names)], Module: "libpython3.12.so"})
		}
		py := make([]stack.Frame, npy)
		for i := range py {
			py[i] = stack.Frame{Kind: Kind, Function: "f"}
		}
		var bs []int
		last := 0
		for _, b := range bounds {
			if next := last + int(b%4); next <= npy && next > last {
				bs = append(bs, next)
				last = next
			}
		}
		out := merge(frames, py, bs, cut, "/x/libpython3.12.so")
		var n int
		for _, f := range out {
			if f.Kind == Kind && f.Function == "f" {
				n++
			}
		}
		if n != npy {
			t.Fatalf("%d Python frames out of %d", n, npy)
		}
	})
}

// FuzzChain: any chain the kernel may send (the fuzzer's record, of
// frames from the target's memory) is refused or read as at most
// maxFrames Python frames, in every layout, and a chain cut says so.
func FuzzChain(f *testing.F) {
	rec := make([]byte, 32+3*32)
	rec[12] = 3
	for i := range 3 {
		rec[32+i*32] = byte(i + 1) // addr
		rec[32+i*32+8] = 0x40      // code
		rec[32+i*32+24] = byte(i)  // owner
	}
	for minor := range layouts {
		f.Add(uint8(minor), rec, false)
	}
	f.Fuzz(func(t *testing.T, minor uint8, record []byte, more bool) {
		l, ok := layouts[int(minor)]
		if !ok {
			return
		}
		var c ebpf.Chain
		if err := ebpf.ParseChain(record, &c); err != nil {
			return
		}
		r := reader{l: l}
		py, cut, err := r.chain(c.Frames, more || c.Flags&ebpf.More != 0, nil)
		if err != nil {
			return
		}
		if len(py) > maxFrames {
			t.Fatalf("%d frames", len(py))
		}
		if more && !cut {
			t.Fatalf("a chain that goes on is not cut")
		}
		if len(py) > 0 && !py[len(py)-1].entry {
			t.Fatalf("the outermost frame does not end the eval loop's call")
		}
	})
}
