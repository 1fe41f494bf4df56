package verdict

import (
	"strings"
	"testing"

	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/syscalls"
)

// pyThread is a thread running the Python function fn (file w.py) in
// share of its samples, at c of a core, demanding demand of the window,
// making futex calls at futex a second (the GIL's hand-offs).
func pyThread(tid int, fn string, c proc.CPU, demand, futex, share float64) Thread {
	t := thread(tid, "python3", c)
	if futex > 0 {
		t.Syscalls = append(t.Syscalls, call("futex", futex, "", map[string]float64{"ok": 0.5, "ETIMEDOUT": 0.5}))
	}
	t.Demand = demand
	n := int(share * 100)
	t.Stacks = []Stack{
		{Frames: []string{fn + " (w.py:42)", "Thread.run (threading.py:1010)", "start_thread"}, Count: n,
			Interpreted: &Interpreted{Language: "Python", Function: fn, File: "/app/w.py", Line: 42}},
	}
	if n < 100 {
		t.Stacks = append(t.Stacks, Stack{Frames: []string{"memcpy", "start_thread"}, Count: 100 - n})
	}
	return t
}

// contenders are n Python threads sharing the GIL: c of a core each,
// blocked blocked of the window, futex calls at f a second.
func gilThreads(n int, c, blocked, f float64) []Thread {
	var ts []Thread
	for i := 0; i < n; i++ {
		ts = append(ts, pyThread(400+i, "worker", cpu(c, 0), 100-blocked, f, 1))
	}
	ts[0].CPU = cpu(c*1.2, 0) // the holder runs most
	ts[0].Stacks[0].Interpreted.Function = "Indexer.rebuild"
	return ts
}

func TestGILContention(t *testing.T) {
	testJudge(t, []judgeCase{
		{name: "four threads on the GIL", o: obs(gilThreads(4, 20, 60, 300)...), want: GILContention, tid: 400, syscall: "futex",
			summary: "4 Python threads want the CPU but take turns on the GIL"},
		{name: "one thread", o: obs(gilThreads(1, 60, 30, 300)...), want: ComputeLoop},

		// Below a threshold the threads are no GIL contention; named
		// alike (CPython's threads keep the process's name) with one hot
		// stack, they are one thread group computing in Python, which
		// wants the CPU of a hot thread.
		{name: "CPU just below GILThreadCPU each", o: obs(gilThreads(4, 0.99*GILThreadCPU/1.0, 60, 300)[1:]...), want: ComputeLoop},
		{name: "CPU just above GILThreadCPU each", o: obs(gilThreads(5, 1.01*GILThreadCPU, 60, 300)[1:]...), want: GILContention},
		{name: "blocked just below GILBlocked", o: obs(gilThreads(3, 20, 0.99*GILBlocked, 300)...), want: ComputeLoop},
		{name: "blocked just above GILBlocked", o: obs(gilThreads(3, 20, 1.01*GILBlocked, 300)...), want: GILContention},
		{name: "futex just below GILFutexRate", o: obs(gilThreads(3, 20, 60, 0.99*GILFutexRate)...), want: ComputeLoop},
		{name: "futex just above GILFutexRate", o: obs(gilThreads(3, 20, 60, 1.01*GILFutexRate)...), want: GILContention},
		{name: "together just above GILMaxCPU", o: obs(gilThreads(4, 1.01*GILMaxCPU/4.2, 30, 300)...), want: ComputeLoop},
		{name: "together just below GILMaxCPU", o: obs(gilThreads(4, 0.99*GILMaxCPU/4.2, 30, 300)...), want: GILContention},
		{name: "together just below HotThreadCPU", o: obs(gilThreads(3, 0.99*HotThreadCPU/3.2, 60, 300)...), want: ComputeLoop},
		{name: "together just above HotThreadCPU", o: obs(gilThreads(3, 1.01*HotThreadCPU/3.2, 60, 300)...), want: GILContention},
	})
	// Native threads with the same CPU and futex calls are not Python's.
	native := gilThreads(4, 20, 60, 300)
	for i := range native {
		native[i].Stacks[0].Interpreted = nil
	}
	if vs := Judge(obs(native...)); vs[0].Pattern == GILContention {
		t.Errorf("native threads judged %s", vs[0].Pattern)
	}
	// The verdict names the holder's function and the starved threads.
	v := Judge(obs(gilThreads(3, 20, 60, 300)...))[0]
	text := v.Summary + "\n" + strings.Join(v.Evidence, "\n")
	for _, want := range []string{"held it most in Indexer.rebuild (w.py:42)", "starved of the GIL: python3 (TID 401), python3 (TID 402)", "ProcessPoolExecutor"} {
		if !strings.Contains(text+v.Advice, want) {
			t.Errorf("verdict lacks %q:\n%s\n%s", want, text, v.Advice)
		}
	}
}

// TestInterpreted: a thread that runs Python is judged by its Python
// code: the compute loop named by the function and line, not by the
// interpreter's C function; its GIL hand-offs not counted against it;
// a syscall loop named by its Python caller, with Python's advice.
func TestInterpreted(t *testing.T) {
	// A Python loop whose samples end in the interpreter's allocator.
	loop := func(futex, share float64) Thread {
		th := pyThread(500, "Indexer.rebuild", cpu(98, 1), 0, futex, share)
		th.Stacks[0].Frames = append([]string{"_PyObject_Malloc"}, th.Stacks[0].Frames...)
		th.Code = code("_PyObject_Malloc", Instruction{Addr: 1, Text: "cmp rdx, rdi", Samples: 9})
		return th
	}
	testJudge(t, []judgeCase{
		{name: "compute loop in Python", o: obs(loop(0, 1)), want: ComputeLoop,
			summary: "computes in Python, in Indexer.rebuild at line 42 of w.py"},
		{name: "GIL hand-offs above ComputeMaxRate", o: obs(loop(1300, 1)), want: ComputeLoop, summary: "in Indexer.rebuild"},
		{name: "interpreted just above InterpretedShare", o: obs(loop(0, 1.01*InterpretedShare)), want: ComputeLoop, summary: "computes in Python"},
		{name: "interpreted just below InterpretedShare", o: obs(loop(0, 0.99*InterpretedShare)), want: ComputeLoop, summary: "computes in user space"},
	})
	if v := Judge(obs(loop(0, 1)))[0]; v.Code != nil || !strings.Contains(v.Advice, "numpy") {
		t.Errorf("the Python compute loop shows machine code (%v) or lacks Python advice: %s", v.Code != nil, v.Advice)
	}
	// The same futex calls in a native thread are its own.
	native := loop(1300, 1)
	native.Stacks[0].Interpreted = nil
	if v := Judge(obs(native))[0]; v.Pattern == ComputeLoop {
		t.Errorf("a native thread with 1300 futex calls a second judged %s", v.Pattern)
	}

	poll := pyThread(600, "drain", cpu(40, 55), 0, 0, 1)
	poll.Syscalls = []syscalls.Syscall{call("recvfrom", 200000, "unix socket", map[string]float64{"EAGAIN": 1})}
	poll.Stacks[0].Frames = []string{"recv", "sock_recv", "drain (w.py:42)"}
	testJudge(t, []judgeCase{{name: "busy poll in Python", o: obs(poll), want: BusyPoll, summary: "the Python caller is drain (w.py:42)"}})
	if v := Judge(obs(poll))[0]; !strings.Contains(v.Advice, "selectors") {
		t.Errorf("busy poll in Python advice: %s", v.Advice)
	}
}

// TestGILHolderRead: the thread named as holding the GIL is the one its
// state, read at the samples, shows held it most: not the busiest
// contender when another held it more, and a thread that held it without
// running (blocked in C code that kept it) though it is no contender;
// with the state unread, the busiest contender, and a note says why.
func TestGILHolderRead(t *testing.T) {
	for _, c := range []struct {
		name    string
		gil     *GIL
		extra   []Thread
		tid     int
		want    []string
		starved string
	}{
		{"held most by a contender that is not the busiest", &GIL{Readings: 100, Held: map[int]int{400: 20, 401: 10, 402: 60}, Free: 10}, nil,
			402, []string{"python3 (TID 402) held it most", "the GIL, read from the interpreter at 100 samples, was held by python3 (TID 402) 60%, python3 (TID 400) 20%, python3 (TID 401) 10%; by none 10%"},
			"python3 (TID 400), python3 (TID 401)"},
		{"held most by a thread that does not run", &GIL{Readings: 200, Held: map[int]int{400: 30, 401: 20, 402: 10, 500: 140}}, []Thread{pyThread(500, "hog", cpu(0.5, 0), 1, 0, 1)},
			500, []string{"python3 (TID 500) held it most in hog (w.py:42)", "was held by python3 (TID 500) 70%"},
			"python3 (TID 400), python3 (TID 401), python3 (TID 402)"},
		{"not read", &GIL{Err: "the GIL of CPython 3.12 could not be found: no interpreter yet"}, nil,
			400, []string{"the GIL's own state could not be read (the GIL of CPython 3.12 could not be found: no interpreter yet): the thread named as holding it is the busiest"},
			"python3 (TID 401), python3 (TID 402)"},
		{"read on a timer", &GIL{EveryMS: 10, Readings: 300, Held: map[int]int{400: 50, 401: 200, 402: 50}}, nil,
			401, []string{"python3 (TID 401) held it most", "the GIL, read from the interpreter every 10 ms (300 readings), was held by python3 (TID 401) 67%"},
			"python3 (TID 400), python3 (TID 402)"},
		{"no process GIL", nil, nil, 400, []string{"the GIL's own state could not be read (no stack samples)"}, "python3 (TID 401), python3 (TID 402)"},
		{"read, held by no thread observed", &GIL{Readings: 50, Held: map[int]int{999: 50}}, nil, 400, []string{"could not be read"}, "python3 (TID 401), python3 (TID 402)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := obs(append(gilThreads(3, 20, 60, 300), c.extra...)...)
			o.GIL = c.gil
			vs := Judge(o)
			v := vs[0]
			if v.Pattern != GILContention || v.Thread.TID != c.tid {
				t.Fatalf("%s for TID %d, want %s for %d", v.Pattern, v.Thread.TID, GILContention, c.tid)
			}
			text := v.Summary + "\n" + strings.Join(v.Evidence, "\n")
			for _, w := range append(c.want, "starved of the GIL: "+c.starved) {
				if !strings.Contains(text, w) {
					t.Errorf("verdict lacks %q:\n%s", w, text)
				}
			}
		})
	}
}
