package verdict

import (
	"cmp"
	"fmt"
	"path"
	"slices"
	"strings"
)

// compute_loop: a thread on CPU in its own code with hardly a syscall: a
// loop that does not end, or does more work than it should.
//
// Thresholds: the thread wants ComputeCPU or more of a core (its demand,
// or its CPU), ComputeUser or more of its CPU is in user space, it makes
// fewer than ComputeMaxRate syscalls a second, and its syscalls were
// observed (without them, few is not known). The verdict names a function
// as the loop only when ComputeFunctionShare or more of the thread's
// samples end in it; otherwise it says the profile is flat and lists the
// top few.

const (
	// ComputeCPU is what the thread must want of a core to be a compute
	// loop worth naming: more than half a core on one function. Below,
	// the thread leaves its core idle half the time: it waits for
	// something, which is what paces it.
	ComputeCPU = 50.0

	// ComputeUser is the part of the thread's CPU that must be in user
	// space: a loop in its own code still pays the kernel for timer
	// interrupts and page faults, a few percent; more than a fifth in the
	// kernel is the kernel's work, which kernel_bound judges.
	ComputeUser = 0.8

	// ComputeMaxRate is the rate of syscalls a thread must stay below for
	// its CPU to be its own code's: the same bar as LoopRate, one call a
	// millisecond. A thread doing real I/O or waiting on it makes more.
	ComputeMaxRate = 1000.0

	// ComputeFunctionShare is the part of the thread's samples a function
	// must hold (as the innermost frame) to be named as where the thread
	// loops: a loop's body holds most of them, while the top function of
	// a flat profile (an interpreter, a big computation over many
	// functions) holds a few percent. A fifth is four times that.
	ComputeFunctionShare = 0.2

	// flatTop is how many functions a flat profile's evidence lists.
	flatTop = 3
)

func computeLoop(o *Observation, t *Thread) *Verdict {
	// A Python thread's GIL hand-offs are the interpreter's calls, not
	// its code's (interpreted.go).
	r := float64(t.calls()-gilCalls(t)) / o.Seconds
	if o.NoSyscalls || t.load() < ComputeCPU || t.CPU.Total <= 0 || t.CPU.User/t.CPU.Total < ComputeUser || r >= ComputeMaxRate {
		return nil
	}
	v := newVerdict(ComputeLoop, t)
	if lang := t.interpreted(); lang != "" {
		return computeInterpreted(v, t, lang, r)
	}
	leaves := leafShares(t)
	if len(leaves) == 0 {
		v.Summary = fmt.Sprintf("thread %s computes in user space with hardly a syscall; no stack of it was sampled to say where", t.Name)
		v.Evidence = []string{cpuLine(t), fmt.Sprintf("%s syscalls", rate(r))}
		v.Advice = "run `cpuwhy record` on it for a flame graph of where the work goes; a loop that does not end, or legitimate work that needs a better algorithm or more cores"
		return v
	}
	if leaves[0].share < ComputeFunctionShare {
		v.Summary = fmt.Sprintf("thread %s computes in user space with hardly a syscall, its time spread over many functions: real work, or a loop around much code", t.Name)
		v.Evidence = []string{cpuLine(t), fmt.Sprintf("%s syscalls", rate(r))}
		v.Evidence = append(v.Evidence, fmt.Sprintf("a flat profile: no function holds %.0f%% of its samples; the top ones %s",
			100*ComputeFunctionShare, topLeaves(leaves, flatTop)))
		v.Evidence = append(v.Evidence, stackLine(t)...)
		v.Advice = "no one function is the loop: look at what the stacks share above the leaves (`cpuwhy record` gives a flame graph) for the caller whose work this is; if the work is legitimate, it needs a better algorithm or more cores"
		return v
	}
	fn := leaves[0].name
	if t.Code != nil && t.Code.Function == fn {
		v.Code = t.Code
	}
	v.Summary = fmt.Sprintf("thread %s computes in user space, in %s, with hardly a syscall: a loop that does not end or does more work than it should", t.Name, fn)
	v.Evidence = append([]string{cpuLine(t), fmt.Sprintf("%s syscalls", rate(r)),
		fmt.Sprintf("%.0f%% of its samples end in %s", 100*leaves[0].share, fn)}, stackLine(t)...)
	if c := v.Code; c != nil && len(c.Instructions) > 0 && t.Samples > 0 {
		hot := slices.MaxFunc(c.Instructions, func(a, b Instruction) int { return a.Samples - b.Samples })
		v.Evidence = append(v.Evidence, fmt.Sprintf("hottest instruction of %s: %#x %s (%d of its %d samples)",
			c.Function, hot.Addr, hot.Text, hot.Samples, c.Samples))
	}
	v.Advice = "look at the loop in " + fn + ": its exit condition and the work per iteration (the hottest instructions show where); if the work is legitimate, it needs a better algorithm or more cores"
	return v
}

// leaf is a function and its part of a thread's samples as the innermost
// frame.
type leaf struct {
	name  string
	share float64
}

// leafShares returns the innermost functions of t's samples, most first.
func leafShares(t *Thread) []leaf {
	counts := map[string]int{}
	total := 0
	for _, s := range t.Stacks {
		total += s.Count
		if len(s.Frames) > 0 {
			counts[s.Frames[0]] += s.Count
		}
	}
	if t.Samples > total {
		total = t.Samples
	}
	out := make([]leaf, 0, len(counts))
	for name, n := range counts {
		out = append(out, leaf{name, float64(n) / float64(total)})
	}
	slices.SortFunc(out, func(a, b leaf) int { return cmp.Or(cmp.Compare(b.share, a.share), strings.Compare(a.name, b.name)) })
	return out
}

// topLeaves lists the first n leaves: "a 5.7%, b 5.1%, c 4.9%".
func topLeaves(ls []leaf, n int) string {
	var parts []string
	for i, l := range ls {
		if i == n {
			break
		}
		parts = append(parts, fmt.Sprintf("%s %.1f%%", l.name, 100*l.share))
	}
	return strings.Join(parts, ", ")
}

// computeInterpreted is the verdict on a compute loop in interpreted
// code: named by the user's function and its hottest line, not by the
// interpreter's C function the samples end in, whose machine code says
// nothing of the user's loop. The same ComputeFunctionShare names it.
func computeInterpreted(v *Verdict, t *Thread, lang string, r float64) *Verdict {
	fns := interpretedFunctions(t)
	if len(fns) == 0 || fns[0].share < ComputeFunctionShare {
		v.Summary = fmt.Sprintf("thread %s computes in %s with hardly a syscall, its time spread over many functions: real work, or a loop around much code", t.Name, lang)
		v.Evidence = []string{cpuLine(t), fmt.Sprintf("%s syscalls", rate(r))}
		var top []string
		for i, f := range fns {
			if i == flatTop {
				break
			}
			top = append(top, fmt.Sprintf("%s %.1f%%", f.hottest.Function, 100*f.share))
		}
		v.Evidence = append(v.Evidence, fmt.Sprintf("a flat profile: no %s function holds %.0f%% of its samples; the top ones %s",
			lang, 100*ComputeFunctionShare, strings.Join(top, ", ")))
		v.Evidence = append(v.Evidence, stackLine(t)...)
		v.Advice = "no one function is the loop: `cpuwhy record -o profile.html` gives a flame graph of the " + lang + " functions; look for the caller whose work this is"
		return v
	}
	f := fns[0].hottest
	v.Summary = fmt.Sprintf("thread %s computes in %s, in %s at line %d of %s, with hardly a syscall: a loop that does not end or does more work than it should",
		t.Name, lang, f.Function, f.Line, path.Base(f.File))
	v.Evidence = append([]string{cpuLine(t), fmt.Sprintf("%s syscalls", rate(r)),
		fmt.Sprintf("%.0f%% of its samples run the %s function %s (%s), most at line %d", 100*fns[0].share, lang, f.Function, f.File, f.Line)}, stackLine(t)...)
	if g := gilCalls(t); g > 0 {
		v.Evidence = append(v.Evidence, fmt.Sprintf("its %d futex calls are the GIL's hand-offs, not counted as its own", g))
	}
	v.Advice = "look at the loop in " + f.String() + ": its exit condition and the work per iteration; if the work is legitimate, it needs a better algorithm"
	if lang == "Python" {
		v.Advice += ", or the inner loop in compiled code (numpy, a C extension, Cython); threads do not add cores to Python code " +
			"(one GIL): processes do (multiprocessing, concurrent.futures.ProcessPoolExecutor)"
	}
	return v
}
