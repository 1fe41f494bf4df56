package cpuprofile

import (
	"testing"

	"github.com/cpuwhy/cpuwhy/internal/unwind"
)

// TestStackReaches: a thread's copies are whole until a sample of it is
// unwound to its start, then as deep as its deepest such sample reached
// plus reachSlack; a walk that ran off a shortened copy is counted and
// makes the thread's copies whole again. Where a runtime reads the stack
// copies, nothing is shortened.
func TestStackReaches(t *testing.T) {
	const full = 16 << 10
	r := &stackReaches{trim: true, need: map[int]int{}}
	if n := r.copyLen(7, full); n != full {
		t.Fatalf("unseen thread: copy %d, want the whole %d", n, full)
	}
	r.learn(&job{tid: 7, stack: make([]byte, full), full: full}, unwind.StopOutermost, 2000)
	if n := r.copyLen(7, full); n != 2000+reachSlack {
		t.Errorf("after a walk reaching 2000 bytes: copy %d, want %d", n, 2000+reachSlack)
	}
	r.learn(&job{tid: 7, stack: make([]byte, 2000+reachSlack), full: full}, unwind.StopOutermost, 1000)
	if n := r.copyLen(7, full); n != 2000+reachSlack {
		t.Errorf("a shallower walk shrank the copy to %d", n)
	}
	r.learn(&job{tid: 7, stack: make([]byte, 2000+reachSlack), full: full}, unwind.StopNoInfo, 6000)
	if n := r.copyLen(7, full); n != 2000+reachSlack {
		t.Errorf("an incomplete walk for another reason changed the copy to %d", n)
	}
	if n := r.copyLen(7, 1000); n != 1000 {
		t.Errorf("a sample with a 1000-byte copy: copy %d, want 1000", n)
	}
	r.learn(&job{tid: 7, stack: make([]byte, 2000+reachSlack), full: full}, unwind.StopMemory, 2000+reachSlack)
	if r.truncated != 1 {
		t.Errorf("truncated %d, want 1", r.truncated)
	}
	if n := r.copyLen(7, full); n != full {
		t.Errorf("after a walk ran off the shortened copy: copy %d, want the whole %d", n, full)
	}
	// A walk that ran off a whole copy is the kernel's limit, not ours.
	r.learn(&job{tid: 8, stack: make([]byte, full), full: full}, unwind.StopMemory, full)
	if r.truncated != 1 {
		t.Errorf("a whole copy's end counted as a shortening: %d", r.truncated)
	}

	off := &stackReaches{need: map[int]int{}}
	off.learn(&job{tid: 7, stack: make([]byte, full), full: full}, unwind.StopOutermost, 100)
	if n := off.copyLen(7, full); n != full {
		t.Errorf("with a runtime reading stacks: copy %d, want the whole %d", n, full)
	}
}
