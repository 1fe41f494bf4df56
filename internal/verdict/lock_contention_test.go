package verdict

import (
	"testing"

	"github.com/cpuwhy/cpuwhy/internal/proc"
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
