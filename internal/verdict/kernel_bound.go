package verdict

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/syscalls"
)

// kernel_bound: a thread whose CPU goes to the kernel's work in one
// syscall: big copies, page faults of huge reads, not many small calls.
//
// Thresholds: the thread wants KernelCPU or more of a core, KernelShare or
// more of its CPU is system time, and one syscall that is neither made to
// wait nor zero-copy holds KernelCallShare or more of its syscall time at
// KernelCallMean or more a call, KernelCallCPU or more of it on a CPU.

const (
	// KernelCPU is what the thread must want of a core (its demand, or
	// its CPU) for the kernel to be what binds it: more than half. A
	// server thread that sleeps in epoll_wait half the time is paced by
	// its clients, however much of its syscall time one call takes (a
	// worker serving 1 MiB files by sendfile to a fast client: 59% of its
	// syscall time in sendfile, 111 µs a call, at 32% of a core, measured).
	KernelCPU = 50.0

	// KernelShare is the part of a thread's CPU in the kernel above which
	// the kernel's work is the cost; a thread in its own code still has a
	// few percent there (interrupts, page faults).
	KernelShare = 0.7

	// KernelCallShare is the part of all the thread's syscall time, waits
	// included, that one syscall must hold. That syscall is never one made
	// to wait (epoll_wait, futex, sleeps), whose long calls are spent off
	// CPU, but its share is of the waits too: a server's thread that waits
	// for its clients longer than it sends (a busy nginx worker: 70% of
	// its CPU in the kernel, epoll_wait 300µs a call and most of its
	// syscall time) is not bound by the kernel's work. Nor is that
	// syscall a zero-copy one (sendfile, splice): a file server saturated
	// by sendfile has the kernel do its real work the cheapest way there
	// is.
	KernelCallShare = 0.5

	// KernelCallMean is the time that syscall must take on average: long
	// calls are the kernel's work (big copies, page faults of huge reads),
	// where short ones would be the cost of making many small calls,
	// which the loop patterns judge.
	KernelCallMean = 50 * time.Microsecond

	// KernelCallCPU is the system CPU the thread must have used per call
	// of that syscall (all its system time over the calls' count): a
	// call's duration counts the time it was blocked or waited for a CPU
	// too, while the kernel's work is done on one. A client whose
	// blocking recvfrom waits 100 µs for a starved server's reply has
	// long calls and little CPU in them (seen under load: 16k calls a
	// second, 101 µs each, 15 µs of system CPU a call).
	KernelCallCPU = KernelCallMean / 2
)

func kernelBound(o *Observation, t *Thread) *Verdict {
	if t.load() < KernelCPU || t.CPU.Total <= 0 || t.CPU.System/t.CPU.Total < KernelShare {
		return nil
	}
	// The call doing the kernel's work is never one that waits: an
	// event loop's epoll_wait holds most of its syscall time, blocked.
	// Its share stays of all the thread's syscall time, waits included:
	// a thread that waits for events longer than it spends in the call
	// is paced by what it waits for (its clients), not bound by the
	// kernel.
	var s *syscalls.Syscall
	for i := range t.Syscalls {
		if c := &t.Syscalls[i]; !syscalls.Waits(c.Name) && (s == nil || c.Share > s.Share) {
			s = c
		}
	}
	if s == nil || s.Timed == 0 || s.Share < 100*KernelCallShare || time.Duration(s.MeanNs) < KernelCallMean {
		return nil
	}
	if s.Count > 0 && o.Seconds > 0 && time.Duration(t.CPU.System/100*o.Seconds/float64(s.Count)*1e9) < KernelCallCPU {
		return nil
	}
	// A file server saturated by sendfile is the kernel doing the
	// server's real work the cheapest way there is: not a bug, and the
	// advice (zero-copy) would be what it already does.
	if slices.Contains(syscalls.ZeroCopyCalls, s.Name) {
		return nil
	}
	v := newVerdict(KernelBound, t)
	v.Syscall, v.FD = str(s.Name), fdOf(s)
	v.atSyscall(t, s.Name)
	v.Summary = fmt.Sprintf("thread %s spends its CPU in the kernel, doing the work of %s: few calls, each long", t.Name, s.Name)
	v.Evidence = append([]string{cpuLine(t),
		fmt.Sprintf("%s%s: %s, %s each on average, %.0f%% of the thread's time in syscalls",
			s.Name, onFD(s), rate(float64(s.Count)/o.Seconds), time.Duration(s.MeanNs), s.Share)}, stackLine(t)...)
	if len(t.Stacks) > 0 && len(t.Stacks[0].Kernel) > 0 {
		k := t.Stacks[0].Kernel
		if len(k) > 4 {
			k = k[:4]
		}
		v.Evidence = append(v.Evidence, "in the kernel: "+strings.Join(k, " <- "))
	}
	v.Advice = "ask the kernel for less: smaller or fewer copies (mmap, sendfile/splice, zero-copy), caching results, avoiding repeated reads of the same data"
	return v
}
