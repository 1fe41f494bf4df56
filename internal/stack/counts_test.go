package stack

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestCountsSharedFrames: stacks that share outer frames with the one
// before, or frames at other depths, or none, are counted each as its
// own frames say, as a map of their names would count them.
func TestCountsSharedFrames(t *testing.T) {
	frame := func(i int) Frame {
		return Frame{Kind: Native, Function: fmt.Sprintf("f%d", i), Module: "m", Offset: uint64(i)}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	c := NewCounts()
	want := map[string]int64{}
	for range 2000 {
		// Outer frames mostly alike, inner ones varied, depths varied.
		n := 1 + rng.IntN(8)
		frames := make([]Frame, n)
		for i := range frames {
			if i >= n-3 {
				frames[i] = frame(100 + n - i) // the outermost three: by depth from the outside
			} else {
				frames[i] = frame(rng.IntN(6))
			}
		}
		tid := 1 + rng.IntN(2)
		c.Add(tid, 0, frames, 0)
		want[key(tid, frames)]++
	}
	got := map[string]int64{}
	for _, s := range c.Stacks() {
		got[key(s.TID, s.Frames)] += s.Count
	}
	if len(got) != len(want) {
		t.Errorf("%d distinct stacks counted, want %d", len(got), len(want))
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("stack %s: %d, want %d", k, got[k], n)
		}
	}
}

func key(tid int, frames []Frame) string {
	names := []string{fmt.Sprint(tid)}
	for _, f := range slices.Clone(frames) {
		names = append(names, f.Function)
	}
	return strings.Join(names, ";")
}
