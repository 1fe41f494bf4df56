package diagnose

import (
	"fmt"
	"os"
	"testing"

	"github.com/cpuwhy/cpuwhy/internal/cpuprofile"
	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/verdict"
)

// TestListing decodes the real bytes of a spin loop (spinyield's
// spin_wait_for_work, see internal/disasm/testdata/README) with samples
// where each kind of sampling puts them, and checks that the listing
// holds the whole loop, pause included, and that the verdict rules call
// it a spin whichever they are.
func TestListing(t *testing.T) {
	code, err := os.ReadFile("../disasm/testdata/spin_wait_for_work.amd64")
	if err != nil {
		t.Fatal(err)
	}
	const base = 0x1520
	tests := []struct {
		name    string
		counts  map[uint64]int
		hot     uint64
		loop    *verdict.Loop
		pattern verdict.Pattern
	}{
		{"hardware sampling: on the pause", map[uint64]int{0x153e: 90, 0x1530: 10}, 0x153e, &verdict.Loop{Start: 0x1530, End: 0x1548}, verdict.SpinYield},
		{"timer sampling: after the pause", map[uint64]int{0x1540: 100}, 0x1540, &verdict.Loop{Start: 0x1530, End: 0x1548}, verdict.SpinYield},
		{"spread over the loop", map[uint64]int{0x1536: 50, 0x1530: 30, 0x1546: 20}, 0x1536, &verdict.Loop{Start: 0x1530, End: 0x1548}, verdict.SpinYield},
		{"an inner loop without a pause", map[uint64]int{0x1586: 60, 0x1580: 40}, 0x1586, &verdict.Loop{Start: 0x1580, End: 0x1595}, verdict.ComputeLoop},
		{"no loop", map[uint64]int{0x15fb: 100}, 0x15fb, nil, verdict.ComputeLoop},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var samples int
			for _, n := range tt.counts {
				samples += n
			}
			c := listing("amd64", code, base, "spin_wait_for_work", samples, tt.counts, tt.hot)
			if c == nil {
				t.Fatal("no listing")
			}
			if (c.Loop == nil) != (tt.loop == nil) || c.Loop != nil && *c.Loop != *tt.loop {
				t.Fatalf("loop %+v, want %+v", c.Loop, tt.loop)
			}
			var shown int
			for _, in := range c.Instructions {
				shown += in.Samples
			}
			if shown != samples {
				t.Errorf("listing holds %d of %d samples: %+v", shown, samples, c.Instructions)
			}
			if c.Loop != nil && (c.Instructions[0].Addr > c.Loop.Start || c.Instructions[len(c.Instructions)-1].Addr < c.Loop.End-2) {
				t.Errorf("listing %#x-%#x does not hold the loop %#x", c.Instructions[0].Addr, c.Instructions[len(c.Instructions)-1].Addr, *c.Loop)
			}
			o := &verdict.Observation{Seconds: 1, Threads: []verdict.Thread{{TID: 7, Name: "Spinner", Samples: samples, Code: c}}}
			o.CPU = proc.CPU{User: 99, System: 0.5, Total: 99.5}
			o.Threads[0].CPU = o.CPU
			vs := verdict.Judge(o)
			if len(vs) == 0 || vs[0].Pattern != tt.pattern {
				t.Errorf("verdicts %+v, want %s", vs, tt.pattern)
			}
		})
	}
}

// The bytes a loop's length before the hot code may be unmapped; the
// fallback reads from the start of its page, which may be further back
// than that: hotCode reads into a buffer of that size (it sliced the
// first one past its capacity and panicked, on a starved thread whose
// code was first listed for its demand).
func TestHotCodeFromPageStart(t *testing.T) {
	code, err := os.ReadFile("../disasm/testdata/spin_wait_for_work.amd64")
	if err != nil {
		t.Fatal(err)
	}
	const page = 0x400000
	base := uint64(page + 0xf00) // 3840 bytes into its page: far more than disasm.MaxLoop
	text := make([]byte, 0xf00+len(code))
	copy(text[0xf00:], code)
	mem := MemoryFunc(func(pid int, p []byte, addr uint64) (int, error) {
		if addr < page || addr >= page+uint64(len(text)) || addr != page {
			return 0, fmt.Errorf("reading %#x: only the page start is readable here", addr)
		}
		return copy(p, text), nil
	})
	hot := base + (0x153e - 0x1520)
	c := hotCode(mem, "amd64", 1, 7, []cpuprofile.Leaf{{TID: 7, PC: hot, Function: "spin_wait_for_work", Count: 90}})
	if c == nil || len(c.Instructions) == 0 {
		t.Fatalf("no listing: %+v", c)
	}
}

// The code of a target that is gone cannot be read: no listing, and no
// second read past the buffer, wherever the hot address lies in its page
// (a read retried from the page's start once ran past the buffer when the
// address lay more than a loop's length into its page).
func TestHotCodeGone(t *testing.T) {
	for _, hot := range []uint64{0x401010, 0x401f00, 0x400100 + 3000} {
		var reads int
		gone := MemoryFunc(func(pid int, p []byte, addr uint64) (int, error) {
			reads++
			if addr+uint64(len(p)) <= hot {
				t.Errorf("read %#x+%d ends before the hot address %#x", addr, len(p), hot)
			}
			return 0, proc.ErrGone
		})
		leaves := []cpuprofile.Leaf{{TID: 7, Function: "f", PC: hot, Count: 10}}
		if c := hotCode(gone, "amd64", 7, 7, leaves); c != nil {
			t.Errorf("listing of a gone process at %#x: %+v", hot, c)
		}
		if reads == 0 || reads > 2 {
			t.Errorf("%d reads at %#x, want one or two", reads, hot)
		}
	}
}
