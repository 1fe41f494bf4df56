package verdict

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// A thread that runs an interpreter's code (Python) is judged by that
// code: its verdicts name the function and line of the user's code, not
// the interpreter's C functions, and give advice in its language. The
// stacks say it (Stack.Interpreted, from the runtime that named the
// frames).
//
// Thresholds: a thread is interpreted when InterpretedShare or more of
// its samples have an interpreted frame.

// InterpretedShare is the part of a thread's samples that must run
// interpreted code for the thread to be judged as the interpreter's:
// a thread that runs Python between long stretches of C (a numpy call)
// has both, and half says which it mostly is.
const InterpretedShare = 0.5

// interpreted returns the language of the code the thread runs, "" when
// it is not interpreted.
func (t *Thread) interpreted() string {
	langs := map[string]int{}
	n := 0
	for _, s := range t.Stacks {
		n += s.Count
		if s.Interpreted != nil {
			langs[s.Interpreted.Language] += s.Count
		}
	}
	n = max(n, t.Samples)
	for lang, c := range langs {
		if n > 0 && float64(c) >= InterpretedShare*float64(n) {
			return lang
		}
	}
	return ""
}

// interpretedFunction is an interpreted function's part of a thread's
// samples, with the line of it most sampled.
type interpretedFunction struct {
	hottest Interpreted
	share   float64
}

// interpretedFunctions are the innermost interpreted functions of t's
// samples, most first: a function whatever its line, since a loop's
// samples spread over the lines of its body.
func interpretedFunctions(t *Thread) []interpretedFunction {
	type key struct{ fn, file string }
	counts := map[key]int{}
	lines := map[Interpreted]int{}
	total := 0
	for _, s := range t.Stacks {
		total += s.Count
		if f := s.Interpreted; f != nil {
			counts[key{f.Function, f.File}] += s.Count
			lines[*f] += s.Count
		}
	}
	total = max(total, t.Samples)
	var out []interpretedFunction
	for k, n := range counts {
		var best Interpreted
		bestN := 0
		for f, c := range lines {
			if f.Function == k.fn && f.File == k.file && (c > bestN || c == bestN && f.Line < best.Line) {
				best, bestN = f, c
			}
		}
		out = append(out, interpretedFunction{hottest: best, share: float64(n) / float64(total)})
	}
	slices.SortFunc(out, func(a, b interpretedFunction) int {
		return cmp.Or(cmp.Compare(b.share, a.share), strings.Compare(a.hottest.String(), b.hottest.String()))
	})
	return out
}

// interpretedCaller is the innermost interpreted frame of the hottest
// stack of v that has one: the user's code that made the calls.
func interpretedCaller(t *Thread, stack []string) *Interpreted {
	for _, s := range t.Stacks {
		if s.Interpreted != nil && slices.Equal(s.Frames, stack) {
			return s.Interpreted
		}
	}
	for _, s := range t.Stacks {
		if s.Interpreted != nil {
			return s.Interpreted
		}
	}
	return nil
}

// gilCalls are the futex calls of a Python thread, which the GIL's
// hand-offs make: a thread that runs Python while others want the GIL
// gives it up every switch interval (5 ms) and takes it back, a futex
// wake and a wait each time, about 1,300 calls a second between two
// busy threads. They are the interpreter's, not the user code's work.
func gilCalls(t *Thread) uint64 {
	if t.interpreted() != "Python" {
		return 0
	}
	if s := t.syscall("futex"); s != nil {
		return s.Count
	}
	return 0
}

// pythonAdvice is the advice for each pattern in a Python thread.
var pythonAdvice = map[Pattern]string{
	BusyPoll: "let the socket wait instead of retrying it: a selectors.DefaultSelector (epoll) or asyncio's event loop tells when it is readable; " +
		"or make it blocking with a timeout (sock.settimeout) instead of catching BlockingIOError and calling recv again",
	ZeroTimeoutPoll: "give select()/poll()/selector.select() a timeout (None waits until something is ready) instead of 0, or let asyncio wait",
	ErrorLoop: "the call fails the same way every time: stop retrying it in a loop (handle the exception once, or back off with time.sleep) " +
		"and fix what makes it fail",
	TimerStorm: "sleep for the real interval, or wait on a threading.Event/Condition or queue.Queue.get(timeout=...) instead of time.sleep with a tiny delay in a loop",
	SpinYield:  "wait on a threading.Event, Condition or queue.Queue instead of a loop around time.sleep(0) or os.sched_yield()",
	WriteStorm: "write in larger pieces: buffer (io.BufferedWriter, a bigger buffering=, or join the parts) instead of many small writes; " +
		"print(..., flush=True) or sys.stdout.flush() in a loop makes one write per call",
}

// speakInterpreted says v in the language of the code t runs, when t is
// interpreted: the caller of the syscalls named in the summary and
// advice for that language. compute_loop does so itself.
func speakInterpreted(v *Verdict, t *Thread) {
	lang := t.interpreted()
	if lang == "" || v.Pattern == ComputeLoop {
		return
	}
	if f := interpretedCaller(t, v.Stack); f != nil {
		v.Summary += fmt.Sprintf("; the %s caller is %s", lang, f)
	}
	if a, ok := pythonAdvice[v.Pattern]; ok && lang == "Python" {
		v.Advice = a
	}
}
