package stack

import (
	"encoding/binary"
	"slices"
)

// Counts counts samples by thread, program and frames as they arrive. Each
// distinct frame is kept once and a stack is a string of frame numbers,
// so memory grows with the distinct stacks, not with the samples.
type Counts struct {
	ids    map[Frame]uint32
	frames []Frame
	// last and lastIDs are the frames of the last Add and their numbers:
	// a sample's stack mostly shares its outer frames with the one
	// before (the same thread's callers, the kernel's syscall entry),
	// and comparing a frame, whose strings are the resolver's same ones,
	// costs less than hashing it (a sixth of `cpuwhy record`'s CPU
	// while sampling at 99 Hz went to hashing frames).
	last    []Frame
	lastIDs []uint32
	stacks  map[string]int64 // thread ID, generation and frame numbers, innermost first
	leaves  map[Leaf]int     // Leaf.Count unused in the key
	key     []byte
	total   int64
}

// Leaf is the innermost user address of samples of one thread: where the
// CPU was, for the disassembly of a hot loop.
type Leaf struct {
	TID   int
	Gen   int // the program it is an address of, as Resolver.At numbers them
	PC    uint64
	Count int
}

// NewCounts returns empty counts.
func NewCounts() *Counts {
	return &Counts{ids: map[Frame]uint32{}, stacks: map[string]int64{}, leaves: map[Leaf]int{}}
}

// Add counts one sample of thread tid, running the program of generation
// gen (Resolver.At), with these frames, innermost first, whose innermost
// user address is leaf (0: none).
func (c *Counts) Add(tid, gen int, frames []Frame, leaf uint64) {
	c.key = binary.AppendUvarint(c.key[:0], uint64(tid))
	c.key = binary.AppendUvarint(c.key, uint64(gen))
	ids := c.lastIDs[len(c.lastIDs):]
	for i, f := range frames {
		var id uint32
		// The frame as deep from the outermost in the last stack.
		if j := len(c.last) - len(frames) + i; j >= 0 && c.last[j] == f {
			id = c.lastIDs[j]
		} else {
			var ok bool
			if id, ok = c.ids[f]; !ok {
				id = uint32(len(c.frames))
				c.ids[f] = id
				c.frames = append(c.frames, f)
			}
		}
		ids = append(ids, id)
		c.key = binary.AppendUvarint(c.key, uint64(id))
	}
	c.lastIDs = append(c.lastIDs[:0], ids...)
	c.last = append(c.last[:0], frames...)
	c.stacks[string(c.key)]++ // no string made for a key already counted
	c.counted(tid, gen, leaf)
}

// AddKeyed is Add, returning the key the stack is counted by: a caller
// that knows the next sample has the same frames (the same addresses,
// named alike) counts it with AddKey, without naming them again.
func (c *Counts) AddKeyed(tid, gen int, frames []Frame, leaf uint64) string {
	c.Add(tid, gen, frames, leaf)
	return string(c.key)
}

// AddKey counts one more sample of the stack AddKeyed returned key for,
// of thread tid and generation gen (those of that stack), with the same
// innermost user address leaf.
func (c *Counts) AddKey(key string, tid, gen int, leaf uint64) {
	c.stacks[key]++
	c.counted(tid, gen, leaf)
}

// counted counts a sample's leaf and the total, once its stack is counted.
func (c *Counts) counted(tid, gen int, leaf uint64) {
	if leaf != 0 {
		c.leaves[Leaf{TID: tid, Gen: gen, PC: leaf}]++
	}
	c.total++
}

// Total is the number of samples counted.
func (c *Counts) Total() int64 { return c.total }

// Stack is one distinct stack of one thread and its count.
type Stack struct {
	TID    int
	Gen    int     // the program the thread ran, as Resolver.At numbers them
	Frames []Frame // innermost first
	Count  int64
}

// Stacks returns the distinct stacks, in no particular order.
func (c *Counts) Stacks() []Stack {
	out := make([]Stack, 0, len(c.stacks))
	for k, n := range c.stacks {
		b := []byte(k)
		tid, w := binary.Uvarint(b)
		b = b[w:]
		gen, w := binary.Uvarint(b)
		b = b[w:]
		var frames []Frame
		for len(b) > 0 {
			id, w := binary.Uvarint(b)
			b = b[w:]
			frames = append(frames, c.frames[id])
		}
		out = append(out, Stack{TID: int(tid), Gen: int(gen), Frames: frames, Count: n})
	}
	return out
}

// Leaves returns the innermost user addresses with their counts, most
// sampled first.
func (c *Counts) Leaves() []Leaf {
	out := make([]Leaf, 0, len(c.leaves))
	for l, n := range c.leaves {
		l.Count = n
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b Leaf) int {
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		if a.TID != b.TID {
			return a.TID - b.TID
		}
		if a.Gen != b.Gen {
			return a.Gen - b.Gen
		}
		if a.PC < b.PC {
			return -1
		}
		if a.PC > b.PC {
			return 1
		}
		return 0
	})
	return out
}
