package flame

import (
	"cmp"
	"fmt"
	"github.com/cpuwhy/cpuwhy/internal/stack"
	"slices"
	"strings"
	"time"
)

// Frame is one named frame (package stack's).
type Frame = stack.Frame

// kernelModule names the mapping that holds kernel frames.
const kernelModule = "[kernel]"

// Kind says what sort of code a frame is, for colouring and the legend.
type Kind string

const (
	KindKernel       Kind = "kernel"
	KindUser         Kind = "user"
	KindUnsymbolized Kind = "unsymbolized"
)

func kindOf(f Frame) Kind {
	switch {
	case f.IsKernel():
		return KindKernel
	case f.Function == "":
		return KindUnsymbolized
	default:
		return KindUser
	}
}

// Stack is one distinct call stack (innermost frame first) of one thread,
// and how many samples had it.
type Stack struct {
	Frames []Frame
	Thread string
	TID    int
	Count  int64
}

// Profile is what one recording produced, ready to be written.
type Profile struct {
	Stacks    []Stack
	Period    time.Duration // sampling period: each sample stands for this much CPU time
	Duration  time.Duration // wall time of the recording
	PID       int
	Process   string
	Container string
	Start     time.Time
	Missing   []string // modules without symbols, each with a hint to get them
}

// Total is the number of samples in the profile.
func (p *Profile) Total() int64 {
	var n int64
	for _, s := range p.Stacks {
		n += s.Count
	}
	return n
}

// check rejects what no writer can represent honestly.
func (p *Profile) check() error {
	if p == nil {
		return fmt.Errorf("no profile")
	}
	for i, s := range p.Stacks {
		if s.Count < 0 {
			return fmt.Errorf("stack %d of thread %d has a negative count %d", i, s.TID, s.Count)
		}
	}
	return nil
}

// threadName is the root frame of a thread's stacks in flame graphs: the
// name with the TID, as stackcollapse-perf --tid does, because threads of
// one name (a pool) can differ in what they burn and top -H shows TIDs.
func (s Stack) threadName() string {
	name := s.Thread
	if name == "" {
		name = "[thread]"
	}
	if s.TID == 0 {
		return name
	}
	return fmt.Sprintf("%s-%d", name, s.TID)
}

// Sample is one raw observation: the frames of one thread at one moment.
type Sample struct {
	Frames []Frame // innermost first
	Thread string
	TID    int
}

// Aggregate counts identical samples (same frames and thread) into Stacks,
// in Merge's order.
func Aggregate(samples []Sample) []Stack {
	stacks := make([]Stack, len(samples))
	for i, s := range samples {
		stacks[i] = Stack{Frames: s.Frames, Thread: s.Thread, TID: s.TID, Count: 1}
	}
	return Merge(stacks)
}

// Merge adds up the counts of identical stacks (same frames, thread name
// and TID) and returns them hottest first; ties are broken by thread, TID
// and frames so the order never depends on the input's.
func Merge(stacks []Stack) []Stack {
	index := make(map[string]int, len(stacks))
	var out []Stack
	var keys []string
	for _, s := range stacks {
		k := stackKey(s)
		if i, ok := index[k]; ok {
			out[i].Count += s.Count
			continue
		}
		index[k] = len(out)
		out = append(out, Stack{Frames: slices.Clone(s.Frames), Thread: s.Thread, TID: s.TID, Count: s.Count})
		keys = append(keys, k)
	}
	order := make([]int, len(out))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		return cmp.Or(
			cmp.Compare(out[b].Count, out[a].Count),
			cmp.Compare(out[a].Thread, out[b].Thread),
			cmp.Compare(out[a].TID, out[b].TID),
			strings.Compare(keys[a], keys[b]),
		)
	})
	sorted := make([]Stack, len(out))
	for i, j := range order {
		sorted[i] = out[j]
	}
	return sorted
}

// stackKey is an unambiguous encoding of everything that makes stacks
// distinct: NUL cannot occur in names read from ELF string tables.
func stackKey(s Stack) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\x00%d", s.Thread, s.TID)
	for _, f := range s.Frames {
		fmt.Fprintf(&b, "\x00%s\x00%s\x00%d\x00%s\x00%x\x00%s\x00%s\x00%t",
			f.Function, f.File, f.Line, f.Module, f.Offset, f.BuildID, f.Kind, f.Inlined)
	}
	return b.String()
}
