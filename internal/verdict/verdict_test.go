package verdict

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/syscalls"
	"github.com/cpuwhy/cpuwhy/test/golden"
)

// The window of every observation below: rates are counts / 2.
const secs = 2.0

func cpu(user, sys float64) proc.CPU { return proc.CPU{Total: user + sys, User: user, System: sys} }

// call builds a syscall seen at r calls a second, with results given as
// "ok", "zero" (success returning 0) or an errno, each with its share.
func call(name string, r float64, fd string, results map[string]float64) syscalls.Syscall {
	s := syscalls.Syscall{Name: name, Count: uint64(r * secs), Rate: r, Errors: map[string]uint64{}}
	for res, share := range results {
		n := uint64(share * r * secs)
		switch res {
		case "ok":
			s.OK += n
		case "zero":
			s.OK += n
			s.Zero += n
		default:
			s.Errors[res] += n
		}
	}
	if fd != "" {
		s.FDs = []syscalls.FD{{FD: 3, Count: s.Count, Desc: fd}}
	}
	return s
}

// spreadFDs spreads a syscall's calls evenly over n sockets (the report
// keeps the top five).
func spreadFDs(s syscalls.Syscall, n int) syscalls.Syscall {
	s.FDs = nil
	for i := 0; i < 5; i++ {
		s.FDs = append(s.FDs, syscalls.FD{FD: 10 + i, Count: s.Count / uint64(n), Desc: fmt.Sprintf("udp 0.0.0.0:%d", 40010+i)})
	}
	s.FDCount = n
	return s
}

func timed(s syscalls.Syscall, meanNs uint64, share float64) syscalls.Syscall {
	s.Timed, s.MeanNs, s.TotalNs, s.Share = s.Count/16+1, meanNs, meanNs*s.Count, share
	return s
}

func thread(tid int, name string, c proc.CPU, calls ...syscalls.Syscall) Thread {
	return Thread{TID: tid, Name: name, CPU: c, Syscalls: calls,
		Samples: 100, Stacks: []Stack{{Frames: []string{"leaf_of_" + name, "caller", "start_thread"}, Count: 90}}}
}

func obs(threads ...Thread) *Observation {
	o := &Observation{Seconds: secs, PID: 100, Name: "prog", Threads: threads}
	for _, t := range threads {
		o.CPU.Total += t.CPU.Total
		o.CPU.User += t.CPU.User
		o.CPU.System += t.CPU.System
		o.Samples += t.Samples
	}
	return o
}

func code(fn string, insns ...Instruction) *Code {
	c := &Code{Function: fn, Instructions: insns}
	for _, in := range insns {
		c.Samples += in.Samples
	}
	return c
}

// loopCode is code whose hottest instruction is in the loop [start, end).
func loopCode(fn string, start, end uint64, insns ...Instruction) *Code {
	c := code(fn, insns...)
	c.Loop = &Loop{Start: start, End: end}
	return c
}

// spinLoop is the spin loop of spinyield's spin_wait_for_work, as gcc
// 12 -O2 builds it, with these samples on its instructions and elsewhere
// more in the function, outside the listing.
func spinLoop(samples map[uint64]int, elsewhere int) *Code {
	insns := []Instruction{
		{Addr: 0x1530, Text: "mov eax, dword ptr [rip+0x2bca]"},
		{Addr: 0x1536, Text: "test eax, eax"},
		{Addr: 0x1538, Text: "jnz 0x15f7"},
		{Addr: 0x153e, Text: "pause"},
		{Addr: 0x1540, Text: "mov rdx, qword ptr [rbx]"},
		{Addr: 0x1543, Text: "test rdx, rdx"},
		{Addr: 0x1546, Text: "jz 0x1530"},
		{Addr: 0x1548, Text: "mov rax, qword ptr [rbx+0x8]"},
	}
	for i := range insns {
		insns[i].Samples = samples[insns[i].Addr]
	}
	c := loopCode("spin_wait_for_work", 0x1530, 0x1548, insns...)
	c.Samples += elsewhere
	return c
}

func noSyscalls(o *Observation) *Observation { o.NoSyscalls = true; return o }

func demand(t Thread, d float64) Thread { t.Demand = d; return t }

func withCode(t Thread, c *Code) Thread { t.Code = c; return t }

// gcStacks gives t 1000 samples, the given share of them with Go's
// collector on the stack.
func gcStacks(t Thread, share float64) Thread {
	gc := int(math.Round(share * 1000))
	t.Samples = 1000
	t.Stacks = []Stack{
		{Frames: []string{"runtime.scanobject", "runtime.gcDrain", "runtime.gcBgMarkWorker", "runtime.goexit"}, Count: gc},
		{Frames: []string{"main.work", "main.main", "runtime.main"}, Count: 1000 - gc},
	}
	slices.SortFunc(t.Stacks, func(a, b Stack) int { return b.Count - a.Count })
	return t
}

// goProc is a Go program of two threads at c each, the given share of
// their samples in the collector.
func goProc(share float64, c proc.CPU) *Observation {
	o := obs(gcStacks(thread(1, "gcpressure", c), share), gcStacks(thread(2, "gcpressure", c), share))
	o.Runtime = "go"
	return o
}

// lockers are n threads making perThread futex calls a second, nothing
// else, each at 40% of a core.
func lockers(perThread float64, n int) []Thread {
	var ts []Thread
	for i := 0; i < n; i++ {
		ts = append(ts, thread(200+i, "Worker", cpu(15, 25), call("futex", perThread, "", map[string]float64{"ok": 0.7, "EAGAIN": 0.3})))
	}
	return ts
}

// churn is a supervisor starting and reaping waits children a second,
// which used children of a core between them, over a window of 100 s:
// long enough for a count of children to tell rates 1% apart.
func churn(waits, children float64) *Observation {
	const window = 100
	n := uint64(math.Round(waits * window))
	o := obs(thread(1, "Supervisor", cpu(5, 20),
		syscalls.Syscall{Name: "clone", Count: n, OK: n, Rate: waits},
		syscalls.Syscall{Name: "wait4", Count: n, OK: n, Rate: waits}))
	o.Seconds = window
	o.Children = children
	return o
}

// others is the rate of other calls beside r calls a second that makes
// those r the given share of all the thread's calls.
func others(r, share float64) float64 { return r/share - r }

const udp = "udp 0.0.0.0:1701"

// judgeCase is an observation and what Judge must make of it. Each
// rule's test file has its own table; every threshold has a case just
// below it and one just above it (or at it, where that is the side it
// holds on), built from the constant.
type judgeCase struct {
	name    string
	o       *Observation
	want    Pattern // the first verdict's
	tid     int
	syscall string
	errno   string
	fd      string
	fdCount int    // 0: not checked
	summary string // a part of the first verdict's summary; "": not checked
}

func testJudge(t *testing.T, tests []judgeCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vs := Judge(tt.o)
			// The causes outside the code are judged beside the
			// verdicts on it: the first of the kind wanted is checked.
			vs = slices.DeleteFunc(vs, func(v Verdict) bool { return v.Pattern.Outside() != tt.want.Outside() })
			if len(vs) == 0 {
				t.Fatal("no verdict")
			}
			v := vs[0]
			if v.Pattern != tt.want {
				t.Fatalf("pattern %s, want %s: %s\n%s", v.Pattern, tt.want, v.Summary, strings.Join(v.Evidence, "\n"))
			}
			if tt.want == Healthy && len(vs) > 1 {
				t.Errorf("healthy with other verdicts: %+v", vs)
			}
			if tt.tid != 0 && v.Thread.TID != tt.tid {
				t.Errorf("thread %d, want %d", v.Thread.TID, tt.tid)
			}
			for _, f := range []struct {
				name string
				got  *string
				want string
			}{{"syscall", v.Syscall, tt.syscall}, {"errno", v.Errno, tt.errno}, {"fd", v.FD, tt.fd}} {
				if f.want == "" {
					continue
				}
				if f.got == nil || *f.got != f.want {
					t.Errorf("%s = %v, want %q", f.name, deref(f.got), f.want)
				}
			}
			if tt.fdCount != 0 && v.FDCount != tt.fdCount {
				t.Errorf("fd count %d, want %d", v.FDCount, tt.fdCount)
			}
			if tt.summary != "" && !strings.Contains(v.Summary, tt.summary) {
				t.Errorf("summary %q, want it to say %q", v.Summary, tt.summary)
			}
			if v.Summary == "" || len(v.Evidence) == 0 || v.Advice == "" {
				t.Errorf("verdict lacks summary, evidence or advice: %+v", v)
			}
		})
	}
}

func deref(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

// A syscall verdict shows the stack of the failing call, not the
// thread's hottest one when that is another call's.
func TestJudgeStackAtSyscall(t *testing.T) {
	th := thread(8, "UdpClient", cpu(30, 60),
		call("sendto", 200000, "udp", map[string]float64{"ok": 1}),
		call("recvfrom", 200000, "udp", map[string]float64{"ECONNREFUSED": 1}))
	th.Stacks = []Stack{
		{Frames: []string{"send", "client", "start_thread"}, Count: 80},
		{Frames: []string{"recv", "client", "start_thread"}, Count: 15},
	}
	v := Judge(obs(th))[0]
	if v.Pattern != ErrorLoop || len(v.Stack) == 0 || v.Stack[0] != "recv" {
		t.Errorf("%s with stack %q, want error_loop at recv", v.Pattern, v.Stack)
	}
}

// The verdicts on the seed's observation, as JSON: the shape other
// tooling reads.
func TestJudgeGolden(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.observation.json"))
	if len(files) == 0 {
		t.Fatal("no observations in testdata")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var o Observation
			if err := json.Unmarshal(data, &o); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			enc := json.NewEncoder(&out)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			if err := enc.Encode(Judge(&o)); err != nil {
				t.Fatal(err)
			}
			golden.Check(t, strings.TrimSuffix(f, ".observation.json")+".verdicts.json", out.Bytes())
		})
	}
}
