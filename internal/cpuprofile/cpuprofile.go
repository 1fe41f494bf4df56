package cpuprofile

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/flame"
	"github.com/cpuwhy/cpuwhy/internal/objfile"
	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/sample"
	"github.com/cpuwhy/cpuwhy/internal/symbol"
	"github.com/cpuwhy/cpuwhy/internal/unwind"
)

// Options shape a recording.
type Options struct {
	FS        proc.FS
	Frequency int           // samples per second per thread on CPU; 0: sample's default (99)
	Duration  time.Duration // 0: until ctx ends or the target exits
	Kernel    bool          // record kernel stacks too
	DebugDirs []string      // extra places to find debug files (--debug-dir)
	// Progress, when set, is called about once a second while recording
	// with the time so far.
	Progress func(elapsed time.Duration)
	// Ready is sample.Options.Ready: called once sampling is set up,
	// the window starting when it returns.
	Ready func()
}

// maxFrames bounds an unwound user stack.
const maxFrames = 128

// Result is a recorded profile and what is worth saying about it.
type Result struct {
	Profile *flame.Profile
	Samples int
	// UnwoundToStart counts the samples whose user stack reached a
	// thread's start (the unwinder ran out of frames cleanly rather than
	// stopping on missing information).
	UnwoundToStart int
	Lost, Dropped  uint64
	Notes          []string
	// Leaves counts the samples of each innermost user address per
	// thread, hottest first: the instructions a compute loop spends its
	// time on.
	Leaves []Leaf
}

// Leaf is an innermost user address of a thread and how often it was
// sampled.
type Leaf struct {
	TID      int
	PC       uint64
	Function string // the frame's name: function, or module+0xoffset
	Count    int
}

// Record samples process pid and returns its profile.
func Record(ctx context.Context, pid int, opts Options) (*Result, error) {
	startMaps, _ := opts.FS.Maps(pid)
	start := time.Now()

	stopProgress := progress(opts.Progress, start)
	rec, err := sample.Record(ctx, pid, sample.Options{Frequency: opts.Frequency, Duration: opts.Duration, Kernel: opts.Kernel, FS: opts.FS, Ready: opts.Ready})
	stopProgress()
	if err != nil {
		return nil, fmt.Errorf("sampling process %d: %w", pid, err)
	}

	// The mappings now, while the process still runs (they are needed to
	// unwind and name what was sampled); those from the start when it has
	// exited.
	maps, err := opts.FS.Maps(pid)
	if err != nil {
		maps = startMaps
	}
	objects := objfile.NewOpener(opts.FS, pid)
	defer objects.Close()
	space, spaceErrs := unwind.NewSpace(maps, objects.OpenELF, unwind.ProcessMemory{Pid: pid})

	symbolizer := symbol.NewSymbolizer(symbol.Options{FS: opts.FS, DebugDirs: opts.DebugDirs})
	defer symbolizer.Close()
	var ksyms *sample.KernelSymbols
	if opts.Kernel {
		ksyms, _ = sample.ReadKernelSymbols(opts.FS)
	}

	res := &Result{Samples: len(rec.Samples), Lost: rec.Lost, Dropped: rec.Dropped, Notes: rec.Notes}
	names := namer{pid: pid, sym: symbolizer, ksyms: ksyms, user: map[uint64]flame.Frame{}, kernel: map[uint64]flame.Frame{}}
	var u unwind.Unwinder
	samples := make([]flame.Sample, 0, len(rec.Samples))
	type leafKey struct {
		tid int
		pc  uint64
	}
	leaves := map[leafKey]int{}
	for _, s := range rec.Samples {
		var frames []flame.Frame
		for _, pc := range s.Kernel {
			frames = append(frames, names.kernelFrame(pc))
		}
		if s.UserRegsValid {
			tr := u.Trace(unwind.Regs{PC: s.Regs.IP, SP: s.Regs.SP, FP: s.Regs.BP, LR: s.Regs.LR},
				unwind.StackCopy{Base: s.Regs.SP, Data: s.Stack}, space.Lookup, maxFrames)
			if tr.Stop.Complete() {
				res.UnwoundToStart++
			}
			for i, f := range tr.Frames {
				frames = append(frames, names.userFrame(f.PC, i > 0))
			}
			if len(tr.Frames) > 0 {
				leaves[leafKey{s.TID, tr.Frames[0].PC}]++
			}
		}
		samples = append(samples, flame.Sample{Frames: frames, Thread: rec.Threads[s.TID], TID: s.TID})
	}

	for k, n := range leaves {
		res.Leaves = append(res.Leaves, Leaf{TID: k.tid, PC: k.pc, Function: names.userFrame(k.pc, false).Name(), Count: n})
	}
	slices.SortFunc(res.Leaves, func(a, b Leaf) int {
		return cmp.Or(b.Count-a.Count, a.TID-b.TID, cmp.Compare(a.PC, b.PC))
	})

	p := &flame.Profile{
		Stacks:   flame.Aggregate(samples),
		Duration: rec.Duration,
		PID:      pid,
		Start:    start,
	}
	if f := opts.Frequency; f > 0 {
		p.Period = time.Second / time.Duration(f)
	} else {
		p.Period = time.Second / sample.DefaultFrequency
	}
	for _, m := range symbolizer.MissingSymbols() {
		p.Missing = append(p.Missing, fmt.Sprintf("%s (build-id %s): %s", m.Module, orNone(m.BuildID), m.Hint))
	}
	if len(spaceErrs) > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d objects without usable call frame information were walked by frame pointers (first: %v)", len(spaceErrs), spaceErrs[0]))
	}
	res.Profile = p
	return res, nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// namer names frames, once per distinct address.
type namer struct {
	pid    int
	sym    *symbol.Symbolizer
	ksyms  *sample.KernelSymbols
	user   map[uint64]flame.Frame
	kernel map[uint64]flame.Frame
}

// userFrame names a user address. A caller's frame holds a return
// address, one past its call instruction, which may already belong to the
// next function or line: the call is looked up instead.
func (n *namer) userFrame(pc uint64, caller bool) flame.Frame {
	at := pc
	if caller && at > 0 {
		at--
	}
	if f, ok := n.user[at]; ok {
		return f
	}
	sf, _ := n.sym.Symbolize(n.pid, at)
	f := flame.Frame{Function: sf.Function, File: sf.File, Line: sf.Line, Module: sf.Module, Offset: sf.Offset, BuildID: sf.BuildID}
	if !sf.Mapped && f.Function == "" {
		f.Module = "[unknown]"
		f.Offset = at
	}
	n.user[at] = f
	return f
}

func (n *namer) kernelFrame(pc uint64) flame.Frame {
	if f, ok := n.kernel[pc]; ok {
		return f
	}
	f := flame.Frame{Kernel: true, Module: "[kernel]", Offset: pc, Function: "[kernel]"}
	if n.ksyms != nil {
		if name, module, _, ok := n.ksyms.Lookup(pc); ok {
			f.Function = name
			if module != "" {
				f.Module = "[" + module + "]"
			}
		}
	}
	n.kernel[pc] = f
	return f
}

// progress calls report once a second until the returned stop is called.
func progress(report func(time.Duration), start time.Time) (stop func()) {
	if report == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				report(time.Since(start))
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}
