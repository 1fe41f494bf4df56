package ebpf

import (
	"encoding/binary"
	"testing"

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
	if got := spec.Maps[syscallsMapStacks].ValueSize; got != 127*8 {
		t.Errorf("stack map values are %d bytes, collectStacks reads 127 PCs", got)
	}
}
