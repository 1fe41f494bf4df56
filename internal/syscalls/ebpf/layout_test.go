package ebpf

import (
	"encoding/binary"
	"testing"

	pyebpf "github.com/cpuwhy/cpuwhy/internal/stack/python/ebpf"
	"github.com/cpuwhy/cpuwhy/internal/syscalls"
)

// The Go types bpf2go generated must match the maps of the object as
// compiled, and the histogram the model's.
func TestLayout(t *testing.T) {
	spec, err := loadSyscalls()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		m          string
		key, value any
	}{
		{syscallsMapStats, syscallsKey{}, syscallsStat{}},
		{syscallsMapStackCounts, syscallsStackKey{}, syscallsStackValue{}},
		{syscallsMapLastKey, uint32(0), syscallsLast{}},
		{syscallsMapSpill, syscallsKey{}, syscallsSpilled{}},
		{syscallsMapPyThreads, uint32(0), syscallsPyThread{}},
		{syscallsMapPyChains, uint64(0), syscallsPyRecord{}},
	} {
		m := spec.Maps[c.m]
		if got, want := m.KeySize, binary.Size(c.key); int(got) != want {
			t.Errorf("%s: key is %d bytes in the object, %d in Go", c.m, got, want)
		}
		if got, want := m.ValueSize, binary.Size(c.value); int(got) != want {
			t.Errorf("%s: value is %d bytes in the object, %d in Go", c.m, got, want)
		}
	}
	if n := len(syscallsStat{}.Hist); n != syscalls.HistBuckets {
		t.Errorf("the BPF histogram has %d buckets, syscalls.HistBuckets is %d", n, syscalls.HistBuckets)
	}
	// The Python walk's record is the one ParseChain reads, its layout
	// the one Layout.Value sets, and the table as big as the note says.
	if got := spec.Maps[syscallsMapPyChains].ValueSize; got != pyebpf.RecordSize {
		t.Errorf("py_chains values are %d bytes, pyebpf.RecordSize %d", got, pyebpf.RecordSize)
	}
	if got, want := binary.Size(syscallsPyLayout{}), binary.Size(pyebpf.Layout{}.Value()); got != want {
		t.Errorf("struct py_layout is %d bytes, pyebpf's %d", got, want)
	}
	if got := spec.Maps[syscallsMapPyChains].MaxEntries; got != maxPyChains {
		t.Errorf("py_chains holds %d chains, maxPyChains says %d", got, maxPyChains)
	}
	if got := spec.Maps[syscallsMapStacks].ValueSize; got != 127*8 {
		t.Errorf("stack map values are %d bytes, collectStacks reads 127 PCs", got)
	}
}
