package verdict

import (
	"testing"

	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/syscalls"
)

func TestLockContention(t *testing.T) {
	// contenders are four threads at c each, making 20,000 futex calls a
	// second each, that share of their calls: the others are reads.
	contenders := func(share float64, c proc.CPU) []Thread {
		var ts []Thread
		for i := 0; i < 4; i++ {
			ts = append(ts, thread(200+i, "Worker", c,
				call("futex", 20000, "", map[string]float64{"ok": 0.7, "EAGAIN": 0.3}),
				call("read", others(20000, share), "pipe", map[string]float64{"ok": 1})))
		}
		return ts
	}
	// sharing are the four lockers using c of a core between them.
	sharing := func(c float64) []Thread {
		ts := lockers(20000, 4)
		for i := range ts {
			ts[i].CPU = cpu(0.375*c/4, 0.625*c/4)
		}
		return ts
	}
	testJudge(t, []judgeCase{
		{name: "lock contention", o: obs(lockers(20000, 4)...), want: LockContention, syscall: "futex"},
		{name: "one thread's futex calls", o: obs(lockers(50000, 1)...), want: Healthy},

		{name: "futex just below LockRate", o: obs(lockers(0.99*LockRate/4, 4)...), want: Healthy},
		{name: "futex just above LockRate", o: obs(lockers(1.01*LockRate/4, 4)...), want: LockContention, syscall: "futex"},
		{name: "futex just below LockShare of each thread's calls", o: obs(contenders(0.99*LockShare, cpu(15, 25))...), want: Healthy},
		{name: "futex just above LockShare of each thread's calls", o: obs(contenders(1.01*LockShare, cpu(15, 25))...), want: LockContention, syscall: "futex"},
		{name: "contenders just below HotThreadCPU between them", o: obs(sharing(0.99 * HotThreadCPU)...), want: Healthy},
		{name: "contenders just above HotThreadCPU between them", o: obs(sharing(1.01 * HotThreadCPU)...), want: LockContention, syscall: "futex"},
	})
}

func TestFruitlessWake(t *testing.T) {
	// waker is stress-ng's futex waker: r wakes a second, that part of
	// them waking nobody; the rest of its calls, if any, are reads
	// making the fruitless wakes share of them.
	waker := func(r, nobody, share float64) *Observation {
		s := call("futex", r, "", map[string]float64{"zero": nobody, "ok": 1 - nobody})
		s.Ops = []syscalls.Op{{Name: "WAKE", Count: s.Count, Zero: s.Zero}}
		calls := []syscalls.Syscall{s}
		if share < 1 {
			calls = append(calls, call("read", others(nobody*r, share)-(1-nobody)*r, "pipe", map[string]float64{"ok": 1}))
		}
		return obs(thread(300, "stress-ng-futex", cpu(5, 50), calls...))
	}
	unrecorded := waker(400000, 0.97, 1)
	unrecorded.Threads[0].Syscalls[0].Ops = nil
	testJudge(t, []judgeCase{
		{name: "fruitless wakes (stress-ng --futex)", o: waker(400000, 0.97, 1), want: LockContention, tid: 300, syscall: "futex",
			summary: "wakes futex waiters that are not there"},
		{name: "futex op not recorded", o: unrecorded, want: Healthy},

		{name: "fruitless wakes just below LoopRate", o: waker(0.99*LoopRate/0.97, 0.97, 1), want: Healthy},
		{name: "fruitless wakes just above LoopRate", o: waker(1.01*LoopRate/0.97, 0.97, 1), want: LockContention, tid: 300},
		{name: "fruitless wakes just below LoopShare of the thread's calls", o: waker(100000, 0.97, 0.99*LoopShare), want: Healthy},
		{name: "fruitless wakes just above LoopShare of the thread's calls", o: waker(100000, 0.97, 1.01*LoopShare), want: LockContention, tid: 300},
		{name: "wakes just below FruitlessWakeShare woke nobody", o: waker(100000, 0.99*FruitlessWakeShare, 1), want: Healthy},
		{name: "wakes just above FruitlessWakeShare woke nobody", o: waker(100000, 1.01*FruitlessWakeShare, 1), want: LockContention, tid: 300},
	})
}
