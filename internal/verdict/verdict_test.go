package verdict

import (
	"bytes"
	"encoding/json"
	"fmt"
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

func gcStacks(t Thread, gc int) Thread {
	t.Stacks = []Stack{
		{Frames: []string{"runtime.scanobject", "runtime.gcDrain", "runtime.gcBgMarkWorker", "runtime.goexit"}, Count: gc},
		{Frames: []string{"main.work", "main.main", "runtime.main"}, Count: 100 - gc},
	}
	slices.SortFunc(t.Stacks, func(a, b Stack) int { return b.Count - a.Count })
	return t
}

func TestJudge(t *testing.T) {
	udp := "udp 0.0.0.0:1701"
	lockers := func(perThread float64, n int) []Thread {
		var ts []Thread
		for i := 0; i < n; i++ {
			ts = append(ts, thread(200+i, "Worker", cpu(15, 25), call("futex", perThread, "", map[string]float64{"ok": 0.7, "EAGAIN": 0.3})))
		}
		return ts
	}
	goProc := func(gcShare int) *Observation {
		o := obs(gcStacks(thread(1, "gcpressure", cpu(90, 5)), gcShare), gcStacks(thread(2, "gcpressure", cpu(90, 5)), gcShare))
		o.Runtime = "go"
		return o
	}
	churn := func(waits, children float64) *Observation {
		o := obs(thread(1, "Supervisor", cpu(5, 20),
			call("clone", waits, "", map[string]float64{"ok": 1}),
			call("wait4", waits, "", map[string]float64{"ok": 1})))
		o.Children = children
		return o
	}
	tests := []struct {
		name    string
		o       *Observation
		want    Pattern // the first verdict's
		tid     int
		syscall string
		errno   string
		fd      string
		fdCount int // 0: not checked
	}{
		{name: "idle", o: obs(thread(1, "acceptor", cpu(0.1, 0.2))), want: Healthy, tid: 1},
		{name: "just below busy", o: obs(thread(1, "t", cpu(4.9, 5))), want: Healthy},

		{name: "busy poll (the seed)", o: obs(thread(7, "NatThreadMain", cpu(40, 59.5), call("recvfrom", 1e6, udp, map[string]float64{"EAGAIN": 1}))),
			want: BusyPoll, tid: 7, syscall: "recvfrom", errno: "EAGAIN", fd: "3 (udp 0.0.0.0:1701)"},
		{name: "busy poll over many sockets (SoftEther's SecureNAT)", o: obs(thread(7, "vpnserver", cpu(30, 45), spreadFDs(call("recvfrom", 870000, "", map[string]float64{"EAGAIN": 1}), 2000))),
			want: BusyPoll, tid: 7, syscall: "recvfrom", errno: "EAGAIN", fd: "fd 10 (udp 0.0.0.0:40010) 0.1%, fd 11 (udp 0.0.0.0:40011) 0.1%, ...", fdCount: 2000},
		{name: "EAGAIN below the loop rate", o: obs(thread(7, "t", cpu(10, 20), call("recvfrom", 0.99*LoopRate, udp, map[string]float64{"EAGAIN": 1}))), want: Healthy},
		{name: "EAGAIN a quarter of a server's calls", o: obs(thread(7, "nginx", cpu(30, 50),
			call("recvfrom", 40000, "tcp", map[string]float64{"ok": 0.5, "EAGAIN": 0.5}),
			call("writev", 20000, "tcp", map[string]float64{"ok": 1}),
			call("epoll_wait", 20000, "epoll", map[string]float64{"ok": 1}))), want: Healthy},

		{name: "error loop (refused)", o: obs(thread(8, "UdpClient", cpu(30, 60),
			call("sendto", 200000, "udp", map[string]float64{"ok": 1}),
			call("recvfrom", 200000, "udp", map[string]float64{"ECONNREFUSED": 1}))),
			want: ErrorLoop, tid: 8, syscall: "recvfrom", errno: "ECONNREFUSED", fd: "3 (udp)"},
		{name: "errors below the share of a syscall", o: obs(thread(8, "t", cpu(30, 60),
			call("sendto", 200000, "udp", map[string]float64{"ok": 1}),
			call("recvfrom", 200000, "udp", map[string]float64{"ECONNREFUSED": 0.85, "ok": 0.15}))), want: Healthy},
		{name: "errors below the loop rate", o: obs(thread(8, "t", cpu(30, 60),
			call("recvfrom", 0.99*LoopRate, "udp", map[string]float64{"ECONNREFUSED": 1}))), want: Healthy},

		{name: "zero-timeout poll", o: obs(thread(9, "Poller", cpu(40, 55), call("epoll_wait", 600000, "epoll", map[string]float64{"zero": 1}))),
			want: ZeroTimeoutPoll, tid: 9, syscall: "epoll_wait", fd: "3 (epoll)"},
		{name: "poll returning events", o: obs(thread(9, "t", cpu(40, 55), call("epoll_wait", 600000, "epoll", map[string]float64{"ok": 1}))), want: Healthy},
		{name: "empty polls below the loop rate", o: obs(thread(9, "t", cpu(40, 55), call("poll", 0.99*LoopRate, "", map[string]float64{"zero": 1}))), want: Healthy},

		{name: "sched_yield loop", o: obs(thread(10, "Spinner", cpu(30, 70), call("sched_yield", 2e6, "", map[string]float64{"ok": 1}))),
			want: SpinYield, tid: 10, syscall: "sched_yield"},
		{name: "rare yields", o: obs(thread(10, "t", cpu(30, 20), call("sched_yield", 0.99*LoopRate, "", map[string]float64{"ok": 1}))), want: Healthy},
		{name: "user-space spin", o: obs(withCode(thread(11, "Spinner", cpu(99, 0.5)), code("spin_lock_acquire",
			Instruction{Addr: 0x1000, Text: "PAUSE", Samples: 30}, Instruction{Addr: 0x1002, Text: "MOV EAX, [RIP+0x2f]", Samples: 40},
			Instruction{Addr: 0x1008, Text: "TEST EAX, EAX", Samples: 20}, Instruction{Addr: 0x100a, Text: "JNE 0x1000", Samples: 10}))),
			want: SpinYield, tid: 11},
		// The loop of spinyield's spin_wait_for_work as gcc builds it:
		// wherever its samples land, the loop holds a pause.
		{name: "spin loop, samples on the pause", o: obs(withCode(thread(11, "Spinner", cpu(99, 0.5)), spinLoop(map[uint64]int{0x153e: 100}, 0))),
			want: SpinYield, tid: 11},
		{name: "spin loop, samples after the pause (timer sampling)", o: obs(withCode(thread(11, "Spinner", cpu(99, 0.5)), spinLoop(map[uint64]int{0x1540: 100}, 0))),
			want: SpinYield, tid: 11},
		{name: "spin loop, samples spread away from the pause", o: obs(withCode(thread(11, "Spinner", cpu(99, 0.5)),
			spinLoop(map[uint64]int{0x1530: 40, 0x1536: 30, 0x1546: 30}, 0))), want: SpinYield, tid: 11},
		{name: "spin loop at the share", o: obs(withCode(thread(11, "Spinner", cpu(99, 0.5)),
			spinLoop(map[uint64]int{0x1530: 20}, 80))), want: SpinYield, tid: 11},
		{name: "spin loop below the share", o: obs(withCode(thread(11, "cruncher", cpu(99, 0.5)),
			spinLoop(map[uint64]int{0x1530: 19}, 81))), want: ComputeLoop, tid: 11},
		{name: "loop without a pause, samples spread", o: obs(withCode(thread(11, "cruncher", cpu(99, 0.5)),
			loopCode("crunch", 0x1580, 0x1595, Instruction{Addr: 0x1580, Text: "sub rax, 0x3b9aca00", Samples: 30},
				Instruction{Addr: 0x1586, Text: "mov rcx, rdx", Samples: 30}, Instruction{Addr: 0x1589, Text: "add rdx, 0x1", Samples: 20},
				Instruction{Addr: 0x158d, Text: "cmp rax, 0x3b9ac9ff", Samples: 10}, Instruction{Addr: 0x1593, Text: "jnle 0x1580", Samples: 10}))),
			want: ComputeLoop, tid: 11},
		{name: "hot loop without a pause", o: obs(withCode(thread(12, "cruncher", cpu(99, 0.5)), code("crunch_numbers",
			Instruction{Addr: 0x1000, Text: "IMUL RAX, RDX", Samples: 60}, Instruction{Addr: 0x1004, Text: "ADD RAX, 1", Samples: 40}))),
			want: ComputeLoop, tid: 12},

		{name: "lock contention", o: obs(lockers(20000, 4)...), want: LockContention, syscall: "futex"},
		{name: "futex below the rate", o: obs(lockers(0.99*LockRate/4, 4)...), want: Healthy},
		{name: "one thread's futex calls", o: obs(lockers(50000, 1)...), want: Healthy},

		{name: "compute loop", o: obs(thread(13, "cruncher", cpu(99, 1), call("write", 1, "pipe", map[string]float64{"ok": 1}))), want: ComputeLoop, tid: 13},
		{name: "compute without a syscall profile", o: noSyscalls(obs(thread(13, "cruncher", cpu(99, 1)))), want: Healthy},
		{name: "compute below half a core", o: obs(thread(13, "t", cpu(45, 1))), want: Healthy},
		{name: "compute squeezed by other load", o: obs(demand(thread(13, "cruncher", cpu(30, 0)), 99)), want: ComputeLoop, tid: 13},
		{name: "compute wanting less than half a core", o: obs(demand(thread(13, "t", cpu(30, 0)), 45)), want: Healthy},
		{name: "compute with many syscalls", o: obs(thread(13, "t", cpu(90, 9), call("read", ComputeMaxRate, "file", map[string]float64{"ok": 1}))), want: Healthy},

		{name: "nanosleep storm", o: obs(thread(14, "Ticker", cpu(20, 40), call("clock_nanosleep", 50000, "", map[string]float64{"zero": 1}))),
			want: TimerStorm, tid: 14, syscall: "clock_nanosleep"},
		{name: "timerfd storm", o: obs(thread(14, "Ticker", cpu(20, 40), call("read", 90000, "anon_inode:[timerfd]", map[string]float64{"ok": 1}))),
			want: TimerStorm, tid: 14, syscall: "read", fd: "3 (anon_inode:[timerfd])"},
		{name: "sleeps of a millisecond", o: obs(thread(14, "t", cpu(20, 40), call("nanosleep", 0.99*TimerRate, "", map[string]float64{"zero": 1}))), want: Healthy},

		{name: "write storm", o: obs(thread(15, "Logger", cpu(30, 65), call("write", 300000, "/var/log/app.log", map[string]float64{"ok": 1}))),
			want: WriteStorm, tid: 15, syscall: "write", fd: "3 (/var/log/app.log)"},
		{name: "writes below the rate", o: obs(thread(15, "t", cpu(30, 65), call("write", 0.99*WriteRate, "/var/log/app.log", map[string]float64{"ok": 1}))), want: Healthy},
		{name: "echo server: as many reads as writes", o: obs(thread(15, "Server", cpu(30, 65),
			call("sendto", 50000, "udp", map[string]float64{"ok": 1}), call("recvfrom", 50000, "udp", map[string]float64{"ok": 1}))), want: Healthy},

		{name: "process churn", o: churn(300, 5), want: ProcessChurn, tid: 1},
		{name: "churn by children's CPU", o: churn(5, ChurnChildrenCPU+1), want: ProcessChurn, tid: 1},
		{name: "a few children", o: churn(0.9*ChurnRate, 0.9*ChurnChildrenCPU), want: Healthy},

		{name: "gc pressure", o: goProc(60), want: GCPressure},
		// The mutator's own work is then what the CPU goes to.
		{name: "gc at GOGC's design share", o: goProc(25), want: ComputeLoop},

		{name: "kernel bound", o: obs(thread(16, "Copier", cpu(5, 94), timed(call("read", 3000, "/dev/zero", map[string]float64{"ok": 1}), 300000, 98))),
			want: KernelBound, tid: 16, syscall: "read", fd: "3 (/dev/zero)"},
		{name: "kernel time in short calls", o: obs(thread(16, "t", cpu(5, 94), timed(call("read", 3000, "/dev/zero", map[string]float64{"ok": 1}), 20000, 98))), want: Healthy},
		{name: "half in the kernel", o: obs(thread(16, "t", cpu(47, 50), timed(call("read", 300, "/dev/zero", map[string]float64{"ok": 1}), 300000, 98))), want: Healthy},
		// A busy nginx worker serving a small page to wrk (seen in
		// internal/e2e/servers): most of its CPU in the kernel, and
		// epoll_wait, blocked, holds most of its syscall time in long
		// calls. Waiting is not the kernel's work.
		{name: "busy nginx worker: long epoll_wait", o: obs(demand(thread(23, "nginx", cpu(6.5, 17.4),
			timed(call("epoll_wait", 3500, "epoll", map[string]float64{"ok": 1}), 307939, 89),
			timed(call("sendfile", 40000, "tcp", map[string]float64{"ok": 1}), 2500, 5),
			timed(call("recvfrom", 40000, "tcp", map[string]float64{"ok": 0.8, "EAGAIN": 0.2}), 800, 2),
			timed(call("setsockopt", 40000, "tcp", map[string]float64{"ok": 1}), 600, 1.5),
			timed(call("openat", 40000, "", map[string]float64{"ok": 1}), 600, 1.5),
			timed(call("close", 40000, "", map[string]float64{"ok": 1}), 300, 1)), 60)), want: Healthy},
		// nginx sending 1 MiB files to wrk with sendfile: each call is
		// long and on the CPU, but the worker waits for its clients
		// (epoll_wait) longer than it sends.
		{name: "paced sendfile", o: obs(demand(thread(23, "nginx", cpu(1, 14.8),
			timed(call("epoll_wait", 400, "epoll", map[string]float64{"ok": 1}), 942827, 78),
			timed(call("sendfile", 930, "tcp", map[string]float64{"ok": 1}), 96259, 20.7),
			timed(call("writev", 930, "tcp", map[string]float64{"ok": 1}), 3090, 0.7)), 62)), want: Healthy},
		// The same worker to a faster client (seen in internal/e2e/servers
		// on a quiet machine): sendfile takes most of the syscall time,
		// but the thread wants a third of a core: its clients pace it.
		{name: "sendfile to a fast client", o: obs(demand(thread(23, "nginx", cpu(1.2, 30.8),
			timed(call("sendfile", 2400, "tcp", map[string]float64{"ok": 1}), 111472, 59),
			timed(call("epoll_wait", 2400, "epoll", map[string]float64{"ok": 1}), 70000, 38),
			timed(call("setsockopt", 20000, "tcp", map[string]float64{"zero": 1}), 500, 3)), 40)), want: Healthy},
		// The same worker saturated (a core's worth of sendfile): the
		// kernel does the server's work without a copy, already the
		// cheap way; the same load made of reads is kernel_bound.
		{name: "saturated sendfile", o: obs(demand(thread(23, "nginx", cpu(3, 92),
			timed(call("sendfile", 8000, "tcp", map[string]float64{"ok": 1}), 111472, 90),
			timed(call("epoll_wait", 8000, "epoll", map[string]float64{"ok": 1}), 10000, 8)), 100)), want: Healthy},
		{name: "saturated reads", o: obs(demand(thread(23, "nginx", cpu(3, 92),
			timed(call("read", 8000, "/srv/big", map[string]float64{"ok": 1}), 111472, 90),
			timed(call("epoll_wait", 8000, "epoll", map[string]float64{"ok": 1}), 10000, 8)), 100)),
			want: KernelBound, tid: 23, syscall: "read"},
		{name: "kernel bound wanting just over half a core", o: obs(demand(thread(16, "Copier", cpu(2, 40),
			timed(call("read", 3000, "/dev/zero", map[string]float64{"ok": 1}), 300000, 98)), KernelCPU+1)),
			want: KernelBound, tid: 16, syscall: "read"},
		{name: "kernel bound beside a wait", o: obs(thread(16, "Copier", cpu(5, 90),
			timed(call("read", 3000, "/dev/zero", map[string]float64{"ok": 1}), 300000, 70),
			timed(call("epoll_wait", 1000, "epoll", map[string]float64{"ok": 1}), 400000, 30))),
			want: KernelBound, tid: 16, syscall: "read", fd: "3 (/dev/zero)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vs := Judge(tt.o)
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

// Patterns of several threads each get their verdict, the hottest first.
func TestJudgeSeveral(t *testing.T) {
	o := obs(
		thread(1, "main", cpu(1, 1)),
		thread(2, "cruncher", cpu(60, 0)),
		thread(3, "NatThreadMain", cpu(40, 59), call("recvfrom", 1e6, "udp", map[string]float64{"EAGAIN": 1})),
	)
	vs := Judge(o)
	var got []string
	for _, v := range vs {
		got = append(got, string(v.Pattern)+"/"+v.Thread.Name)
	}
	if want := []string{"busy_poll/NatThreadMain", "compute_loop/cruncher"}; !slices.Equal(got, want) {
		t.Errorf("verdicts %v, want %v", got, want)
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
