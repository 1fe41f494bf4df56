package verdict

import (
	"math"
	"testing"
)

func TestSpinYield(t *testing.T) {
	// yields is a thread calling sched_yield r times a second, that share
	// of its calls: the others are reads that succeed.
	yields := func(r, share float64) *Observation {
		return obs(thread(10, "Spinner", cpu(50, 50),
			call("sched_yield", r, "", map[string]float64{"ok": 1}),
			call("read", others(r, share), "pipe", map[string]float64{"ok": 1})))
	}
	// spinShare is spinyield's loop holding that share of its function's
	// 1000 samples.
	spinShare := func(share float64) *Code {
		n := int(math.Round(share * 1000))
		return spinLoop(map[uint64]int{0x1530: n}, 1000-n)
	}
	// spinning is a thread in that loop with that part of its CPU in user
	// space.
	spinning := func(user float64) *Observation {
		return obs(withCode(thread(11, "Spinner", cpu(100*user, 100*(1-user))), spinLoop(map[uint64]int{0x1540: 100}, 0)))
	}
	testJudge(t, []judgeCase{
		{name: "sched_yield loop", o: obs(thread(10, "Spinner", cpu(30, 70), call("sched_yield", 2e6, "", map[string]float64{"ok": 1}))),
			want: SpinYield, tid: 10, syscall: "sched_yield"},
		{name: "yields just below LoopRate", o: obs(thread(10, "t", cpu(30, 20), call("sched_yield", 0.99*LoopRate, "", map[string]float64{"ok": 1}))), want: Healthy},

		{name: "yields just above LoopRate", o: obs(thread(10, "t", cpu(30, 20), call("sched_yield", 1.01*LoopRate, "", map[string]float64{"ok": 1}))),
			want: SpinYield, tid: 10, syscall: "sched_yield"},
		{name: "yields just below LoopShare", o: yields(10000, 0.99*LoopShare), want: Healthy},
		{name: "yields just above LoopShare", o: yields(10000, 1.01*LoopShare), want: SpinYield, tid: 10, syscall: "sched_yield"},

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
		{name: "spin loop at SpinShare (20 of 100 samples)", o: obs(withCode(thread(11, "Spinner", cpu(99, 0.5)),
			spinLoop(map[uint64]int{0x1530: 20}, 80))), want: SpinYield, tid: 11},
		{name: "spin loop below SpinShare (19 of 100 samples)", o: obs(withCode(thread(11, "cruncher", cpu(99, 0.5)),
			spinLoop(map[uint64]int{0x1530: 19}, 81))), want: ComputeLoop, tid: 11},
		{name: "loop without a pause, samples spread", o: obs(withCode(thread(11, "cruncher", cpu(99, 0.5)),
			loopCode("crunch", 0x1580, 0x1595, Instruction{Addr: 0x1580, Text: "sub rax, 0x3b9aca00", Samples: 30},
				Instruction{Addr: 0x1586, Text: "mov rcx, rdx", Samples: 30}, Instruction{Addr: 0x1589, Text: "add rdx, 0x1", Samples: 20},
				Instruction{Addr: 0x158d, Text: "cmp rax, 0x3b9ac9ff", Samples: 10}, Instruction{Addr: 0x1593, Text: "jnle 0x1580", Samples: 10}))),
			want: ComputeLoop, tid: 11},
		{name: "hot loop without a pause", o: obs(withCode(thread(12, "cruncher", cpu(99, 0.5)), code("crunch_numbers",
			Instruction{Addr: 0x1000, Text: "IMUL RAX, RDX", Samples: 60}, Instruction{Addr: 0x1004, Text: "ADD RAX, 1", Samples: 40}))),
			want: ComputeLoop, tid: 12},
		{name: "spin loop just below SpinShare", o: obs(withCode(thread(11, "cruncher", cpu(99, 0.5)), spinShare(0.99*SpinShare))), want: ComputeLoop, tid: 11},
		{name: "spin loop just above SpinShare", o: obs(withCode(thread(11, "Spinner", cpu(99, 0.5)), spinShare(1.01*SpinShare))), want: SpinYield, tid: 11},
		// A spin is a compute loop that waits: it asks the same share of
		// user time.
		{name: "spin just below ComputeUser", o: spinning(0.99 * ComputeUser), want: Healthy},
		{name: "spin just above ComputeUser", o: spinning(1.01 * ComputeUser), want: SpinYield, tid: 11},
		{name: "spin without a syscall profile", o: noSyscalls(spinning(0.99)), want: Healthy},
	})
}
