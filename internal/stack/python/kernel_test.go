package python

import (
	"errors"
	"fmt"
	"os"
	"testing"

	cebpf "github.com/cilium/ebpf"

	"github.com/cpuwhy/cpuwhy/internal/stack/python/ebpf"
	"github.com/cpuwhy/cpuwhy/test/privtest"
)

// TestFindChain: a sample is matched to the chain of its thread stamped
// nearest its time, within chainLag either way, and to no other: not
// another thread's, not one of the thread's samples before or after
// (10 ms away at 99 Hz), whichever order the chains of different CPUs
// came in.
func TestFindChain(t *testing.T) {
	const ms = 1_000_000
	chains := []storedChain{
		{time: 100 * ms, tid: 1},
		{time: 100*ms + 1_000, tid: 2}, // another thread, 1 us later
		{time: 110*ms + 3_000, tid: 1}, // the next sample of 1, stamped 3 us after it
		{time: 105 * ms, tid: 3},       // another CPU's, in the ring after a later one
		{time: 120*ms - 2_000, tid: 1}, // stamped 2 us before its sample
		{time: 400 * ms, tid: 1},       // much later
	}
	for _, tc := range []struct {
		name string
		tid  int
		at   uint64
		want int // index in chains, -1: none
	}{
		{"exact", 1, 100 * ms, 0},
		{"other thread at the same time", 2, 100 * ms, 1},
		{"stamped after the sample", 1, 110 * ms, 2},
		{"stamped before the sample", 1, 120 * ms, 4},
		{"out of order", 3, 105*ms + 50_000, 3},
		{"between two samples", 1, 105 * ms, -1},
		{"just past the lag", 1, 100*ms + chainLag + 1, -1},
		{"at the lag", 1, 100*ms + chainLag, 0},
		{"no chain of the thread", 4, 100 * ms, -1},
		{"before every chain", 1, 50 * ms, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := &kernelChains{ring: make([]storedChain, 0, maxChains)}
			for _, c := range chains {
				k.add(&ebpf.Chain{Time: c.time, TID: c.tid})
			}
			got := k.find(tc.tid, tc.at)
			switch {
			case tc.want < 0 && got != nil:
				t.Errorf("matched the chain of %d at %d", got.tid, got.time)
			case tc.want >= 0 && (got == nil || got.time != chains[tc.want].time || got.tid != tc.tid):
				t.Errorf("matched %+v, want chain %d %+v", got, tc.want, chains[tc.want])
			}
		})
	}
}

// TestChainsBounded: the chains kept are the latest maxChains; the
// oldest go first.
func TestChainsBounded(t *testing.T) {
	k := &kernelChains{ring: make([]storedChain, 0, maxChains)}
	frames := make([]ebpf.Frame, 3)
	for i := range 3 * maxChains {
		k.add(&ebpf.Chain{Time: uint64(i+1) * 10_000_000, TID: 7, Frames: frames})
	}
	if len(k.ring) != maxChains {
		t.Fatalf("%d chains kept, want %d", len(k.ring), maxChains)
	}
	last := uint64(3*maxChains) * 10_000_000
	if c := k.find(7, last); c == nil || c.time != last {
		t.Errorf("the latest chain is not found: %+v", c)
	}
	if c := k.find(7, last-uint64(maxChains)*10_000_000); c != nil {
		t.Errorf("a chain older than the last %d is still kept: %+v", maxChains, c)
	}
}

// TestKernelProgramLoads: the verifier takes the program with the
// offsets of every version in the table.
func TestKernelProgramLoads(t *testing.T) {
	for minor, l := range layouts {
		t.Run(fmt.Sprintf("3.%d", minor), func(t *testing.T) {
			w, err := ebpf.Load(kernelLayout(l))
			if (errors.Is(err, ebpf.ErrNotSupported) || errors.Is(err, os.ErrPermission)) && !errors.As(err, new(*cebpf.VerifierError)) {
				privtest.Require(t, err.Error())
			}
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			// The walk is one path per frame: 20-40 instructions each,
			// 256 frames. A branch in it that the verifier follows both
			// ways at each frame (counting shims did) reaches its limit
			// of a million, and the program is refused.
			n, err := w.VerifiedInstructions()
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d instructions verified", n)
			if n > 100_000 {
				t.Errorf("the verifier went through %d instructions, want at most 100,000", n)
			}
		})
	}
}
