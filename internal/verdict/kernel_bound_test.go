package verdict

import (
	"testing"
	"time"
)

func TestKernelBound(t *testing.T) {
	// copying is a thread reading /dev/zero 3000 times a second, each
	// read mean long, holding share percent of its syscall time; it uses
	// c of a core, that part of it in the kernel.
	copying := func(c, system float64, mean time.Duration, share float64) *Observation {
		return obs(thread(16, "Copier", cpu(c*(1-system), c*system),
			timed(call("read", 3000, "/dev/zero", map[string]float64{"ok": 1}), uint64(mean), share)))
	}
	// wanting is the same thread at 42% of a core, wanting d of one.
	wanting := func(d float64) *Observation {
		return obs(demand(thread(16, "Copier", cpu(2, 40),
			timed(call("read", 3000, "/dev/zero", map[string]float64{"ok": 1}), 300000, 98)), d))
	}
	// kernelPerCall is a thread at 99% of a core, 95% of it in the kernel,
	// whose 300 µs reads used f times KernelCallCPU of system CPU each.
	kernelPerCall := func(f float64) *Observation {
		perSecond := 94.05 / 100 / (f * KernelCallCPU.Seconds())
		return obs(thread(16, "Copier", cpu(4.95, 94.05),
			timed(call("read", perSecond, "/dev/zero", map[string]float64{"ok": 1}), 300000, 98)))
	}
	testJudge(t, []judgeCase{
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

		// A request loop's client under load: it wants half a core
		// (ran 23.5%, waited as long for a CPU), nearly all of it in
		// the kernel, and its blocking recvfrom waits 100 µs for the
		// starved server's reply: 15 µs of system CPU a call.
		{name: "long calls, off the CPU", o: obs(demand(thread(16, "Client", cpu(0, 23.5),
			timed(call("recvfrom", 16000, "udp", map[string]float64{"ok": 1}), 101750, 92)), 50.5)), want: Healthy},
		{name: "system CPU a call just below KernelCallCPU", o: kernelPerCall(0.99), want: Healthy},
		{name: "system CPU a call just above KernelCallCPU", o: kernelPerCall(1.01), want: KernelBound, tid: 16, syscall: "read"},

		{name: "demand just below KernelCPU", o: wanting(0.99 * KernelCPU), want: Healthy},
		{name: "demand just above KernelCPU", o: wanting(1.01 * KernelCPU), want: KernelBound, tid: 16, syscall: "read"},
		{name: "CPU just below KernelCPU", o: copying(0.99*KernelCPU, 0.95, 300*time.Microsecond, 98), want: Healthy},
		{name: "CPU just above KernelCPU", o: copying(1.01*KernelCPU, 0.95, 300*time.Microsecond, 98), want: KernelBound, tid: 16, syscall: "read"},
		{name: "system time just below KernelShare", o: copying(99, 0.99*KernelShare, 300*time.Microsecond, 98), want: Healthy},
		{name: "system time just above KernelShare", o: copying(99, 1.01*KernelShare, 300*time.Microsecond, 98), want: KernelBound, tid: 16, syscall: "read"},
		{name: "the call just below KernelCallShare of syscall time", o: copying(99, 0.95, 300*time.Microsecond, 0.99*100*KernelCallShare), want: Healthy},
		{name: "the call just above KernelCallShare of syscall time", o: copying(99, 0.95, 300*time.Microsecond, 1.01*100*KernelCallShare), want: KernelBound, tid: 16, syscall: "read"},
		{name: "calls just below KernelCallMean", o: copying(99, 0.95, KernelCallMean*99/100, 98), want: Healthy},
		{name: "calls just above KernelCallMean", o: copying(99, 0.95, KernelCallMean*101/100, 98), want: KernelBound, tid: 16, syscall: "read", fd: "3 (/dev/zero)"},
	})
}
