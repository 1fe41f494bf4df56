package unwind

import (
	"debug/elf"
	"runtime"
	"testing"
)

// BenchmarkUnwindBusypoll is the cost of unwinding one sample of
// NatThreadMain (five frames, all by CFI, tables built beforehand), as a
// sampler pays it per sample.
func BenchmarkUnwindBusypoll(b *testing.B) {
	_, tid, space, _ := startScenario(b, "busypoll", "NatThreadMain")
	runtime.LockOSThread()
	regs, stack, err := snapshot(tid)
	runtime.UnlockOSThread()
	if err != nil {
		b.Fatal(err)
	}
	var u Unwinder
	tr := u.Trace(regs, stack, space.Lookup, 128)
	b.ReportMetric(float64(len(tr.Frames)), "frames")
	b.ReportAllocs()
	for b.Loop() {
		u.Unwind(regs, stack, space.Lookup, 128)
	}
}

// BenchmarkRowAt is one FDE lookup and evaluation in libc.
func BenchmarkRowAt(b *testing.B) {
	f, err := elf.Open(libcPath(b))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	tab, err := elfTable(f)
	if err != nil {
		b.Fatal(err)
	}
	refs := tab.ehIndex
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		tab.RowAt(refs[i%len(refs)].start + 4)
		i += 97
	}
}

// BenchmarkNewTableLibc is building libc's table from its sections.
func BenchmarkNewTableLibc(b *testing.B) {
	f, err := elf.Open(libcPath(b))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	s, err := ELFSections(f)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewTable(s); err != nil {
			b.Fatal(err)
		}
	}
}
