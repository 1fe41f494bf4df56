package verdict

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/syscalls"
)

func fdOf(s *syscalls.Syscall) *string {
	if len(s.FDs) == 0 {
		return nil
	}
	return str(fdString(s.FDs[0]))
}

// spread reports whether no fd takes half of a syscall's calls.
func spread(s *syscalls.Syscall) bool {
	return len(s.FDs) > 1 && 2*s.FDs[0].Count < s.Count
}

// fdsLine describes the busiest fds of a spread syscall: "fd 14 (udp
// 0.0.0.0:54920) 0.1%, fd 15 (...) 0.1%, ...".
func fdsLine(s *syscalls.Syscall) string {
	var parts []string
	for i, fd := range s.FDs {
		if i == 2 {
			parts = append(parts, "...")
			break
		}
		parts = append(parts, fmt.Sprintf("fd %s %.1f%%", fdString(fd), pct(float64(fd.Count), float64(s.Count))))
	}
	return strings.Join(parts, ", ")
}

func fdString(fd syscalls.FD) string {
	if fd.Desc == "" {
		return fmt.Sprint(fd.FD)
	}
	return fmt.Sprintf("%d (%s)", fd.FD, fd.Desc)
}

// onFD says "on fd 3 (udp 0.0.0.0:1701)" when the syscall has one.
func onFD(s *syscalls.Syscall) string {
	if fd := fdOf(s); fd != nil {
		return " on fd " + *fd
	}
	return ""
}

func busyPoll(o *Observation, t *Thread) *Verdict {
	total := float64(t.calls())
	var best *syscalls.Syscall
	for i := range t.Syscalls {
		s := &t.Syscalls[i]
		if best == nil || s.Errors["EAGAIN"] > best.Errors["EAGAIN"] {
			best = s
		}
	}
	if best == nil {
		return nil
	}
	n := float64(best.Errors["EAGAIN"])
	if n/o.Seconds < LoopRate || n/total < LoopShare {
		return nil
	}
	v := newVerdict(BusyPoll, t)
	v.Syscall, v.Errno, v.FD = str(best.Name), str("EAGAIN"), fdOf(best)
	v.atSyscall(t, best.Name)
	where := onFD(best)
	if spread(best) {
		// No fd takes most of the calls: the loop goes round many of
		// them, reading each whether or not it is ready.
		v.FD, v.FDCount = str(fdsLine(best)), max(best.FDCount, len(best.FDs))
		where = fmt.Sprintf(" on %d fds (%s)", v.FDCount, fdsLine(best))
		v.Summary = fmt.Sprintf("thread %s reads many non-blocking fds in turn, ready or not: %s fails with EAGAIN on nearly every one, and the round starts again at once",
			t.Name, best.Name)
		v.Advice = "read only the fds that are ready: take the ready list from epoll_wait (or poll's revents) instead of trying every socket; " +
			"and block in the wait with a timeout instead of going round again at once"
	} else {
		v.Summary = fmt.Sprintf("thread %s polls a non-blocking fd in a loop: %s keeps failing with EAGAIN (nothing to read) and is called again at once, never waiting for data",
			t.Name, best.Name)
		v.Advice = "wait for the fd to become ready before reading it again: poll/epoll_wait/select with a timeout (or a blocking socket, or SO_RCVTIMEO); " +
			"in an event loop, re-arm the fd and return to the loop on EAGAIN instead of retrying"
	}
	v.Evidence = append([]string{
		cpuLine(t),
		fmt.Sprintf("%s%s returned EAGAIN %s (%.1f%% of its %s calls, %.1f%% of all the thread's calls)",
			best.Name, where, rate(n/o.Seconds), pct(n, float64(best.Count)), best.Name, pct(n, total)),
	}, stackLine(t)...)
	return v
}

func errorLoop(o *Observation, t *Thread) *Verdict {
	total := float64(t.calls())
	var best *syscalls.Syscall
	var bestErr string
	var bestN uint64
	for i := range t.Syscalls {
		s := &t.Syscalls[i]
		for e, n := range s.Errors {
			if e != "EAGAIN" && (n > bestN || n == bestN && e < bestErr) {
				best, bestErr, bestN = s, e, n
			}
		}
	}
	if best == nil {
		return nil
	}
	n := float64(bestN)
	// The failing call may alternate with the one that provokes the
	// error (a send, then the receive that reports the ICMP error), so
	// it needs only half of LoopShare of the thread's calls.
	if n/o.Seconds < LoopRate || n/float64(best.Count) < ErrorShare || n/total < LoopShare/2 {
		return nil
	}
	v := newVerdict(ErrorLoop, t)
	v.Syscall, v.Errno, v.FD = str(best.Name), str(bestErr), fdOf(best)
	v.atSyscall(t, best.Name)
	v.Summary = fmt.Sprintf("thread %s calls %s in a loop that ignores its failure: it fails with %s (%s) every time and is retried at once",
		t.Name, best.Name, bestErr, errnoMeaning(bestErr))
	v.Evidence = append([]string{
		cpuLine(t),
		fmt.Sprintf("%s%s failed with %s %s (%.1f%% of its calls; %.1f%% of all the thread's calls)",
			best.Name, onFD(best), bestErr, rate(n/o.Seconds), pct(n, float64(best.Count)), pct(n, total)),
	}, stackLine(t)...)
	v.Advice = "handle the error instead of retrying at once: " + errnoAdvice(bestErr) + "; back off (sleep, exponential) between retries of a failing call"
	return v
}

func errnoMeaning(e string) string {
	switch e {
	case "ECONNREFUSED":
		return "the peer's port is closed; on UDP a previous send drew an ICMP port unreachable"
	case "EBADF":
		return "the fd is not open"
	case "EINTR":
		return "a signal interrupted the call"
	case "ENOTCONN":
		return "the socket is not connected"
	case "EPIPE", "ECONNRESET":
		return "the peer closed the connection"
	case "ENOENT":
		return "no such file"
	case "EINVAL":
		return "an invalid argument"
	}
	return "see errno(3)"
}

func errnoAdvice(e string) string {
	switch e {
	case "ECONNREFUSED", "ENOTCONN", "EPIPE", "ECONNRESET":
		return "close or reconnect the socket when the peer is gone (on UDP, ECONNREFUSED reports an earlier send's ICMP error: drop or re-resolve that peer)"
	case "EBADF":
		return "stop using the fd once it is closed (a use-after-close bug)"
	case "EINTR":
		return "find what sends the signals so often (an interval timer, a profiler) or use SA_RESTART"
	}
	return "check the call's result and stop or fix the request on a permanent error"
}

func zeroTimeoutPoll(o *Observation, t *Thread) *Verdict {
	total := float64(t.calls())
	s := hottest(t, syscalls.PollCalls, func(s *syscalls.Syscall) uint64 { return s.Zero })
	if s == nil {
		return nil
	}
	n := float64(s.Zero)
	if n/o.Seconds < LoopRate || n/total < LoopShare {
		return nil
	}
	v := newVerdict(ZeroTimeoutPoll, t)
	v.Syscall, v.FD = str(s.Name), fdOf(s)
	v.atSyscall(t, s.Name)
	v.Summary = fmt.Sprintf("thread %s polls with a zero (or near-zero) timeout in a loop: %s returns at once with nothing ready, and is called again",
		t.Name, s.Name)
	ev := fmt.Sprintf("%s%s returned 0 (no fd ready) %s (%.1f%% of the thread's calls)", s.Name, onFD(s), rate(n/o.Seconds), pct(n, total))
	if s.Timed > 0 {
		ev += fmt.Sprintf("; each call took %s on average, so it did not wait", time.Duration(s.MeanNs))
	}
	v.Evidence = append([]string{cpuLine(t), ev}, stackLine(t)...)
	v.Advice = "give the poll a real timeout (-1 to block until an fd is ready, or the time to the next timer) instead of 0; if other work must run, wake the loop with an eventfd or a pipe"
	return v
}

func yieldLoop(o *Observation, t *Thread) *Verdict {
	s := t.syscall("sched_yield")
	if s == nil {
		return nil
	}
	n := float64(s.Count)
	if n/o.Seconds < LoopRate || n/float64(t.calls()) < LoopShare {
		return nil
	}
	v := newVerdict(SpinYield, t)
	v.Syscall = str(s.Name)
	v.atSyscall(t, s.Name)
	v.Summary = fmt.Sprintf("thread %s spins on sched_yield waiting for something (a flag, a lock, a queue): each yield returns at once when the CPU has nothing else to run", t.Name)
	v.Evidence = append([]string{cpuLine(t),
		fmt.Sprintf("sched_yield called %s (%.1f%% of the thread's calls)", rate(n/o.Seconds), pct(n, float64(t.calls())))}, stackLine(t)...)
	v.Advice = "block instead of yielding: wait on a condition variable, a futex, an eventfd or a blocking queue that the producer signals"
	return v
}

func timerStorm(o *Observation, t *Thread) *Verdict {
	total := float64(t.calls())
	var n float64
	var which *syscalls.Syscall
	for i := range t.Syscalls {
		s := &t.Syscalls[i]
		c := uint64(0)
		switch {
		case slices.Contains(syscalls.SleepCalls, s.Name):
			c = s.Count
		case s.Name == "read" && len(s.FDs) > 0 && strings.Contains(s.FDs[0].Desc, "timerfd"):
			c = s.FDs[0].Count
		}
		if c > 0 && (which == nil || float64(c) > n) {
			n, which = float64(c), s
		}
	}
	if which == nil || n/o.Seconds < TimerRate || n/total < LoopShare {
		return nil
	}
	v := newVerdict(TimerStorm, t)
	v.Syscall, v.FD = str(which.Name), fdOf(which)
	v.atSyscall(t, which.Name)
	v.Summary = fmt.Sprintf("thread %s wakes up %s on a timer (%s): sleeps or ticks far shorter than a millisecond, so waking costs more than the work in between",
		t.Name, rate(n/o.Seconds), which.Name)
	ev := fmt.Sprintf("%s%s called %s (%.1f%% of the thread's calls)", which.Name, onFD(which), rate(n/o.Seconds), pct(n, total))
	if which.Timed > 0 {
		ev += fmt.Sprintf(", %s each on average", time.Duration(which.MeanNs))
	}
	v.Evidence = append([]string{cpuLine(t), ev}, stackLine(t)...)
	v.Advice = "sleep until there is work (block on the fd or queue that brings it) or use a coarser tick (milliseconds); batch work per wake-up; for a timerfd, set an interval the work needs"
	return v
}

func writeStorm(o *Observation, t *Thread) *Verdict {
	total := float64(t.calls())
	perFD := map[int]uint64{}
	desc := map[int]string{}
	var calls []string
	for _, s := range t.Syscalls {
		if !slices.Contains(syscalls.WriteCalls, s.Name) {
			continue
		}
		for _, fd := range s.FDs {
			perFD[fd.FD] += fd.Count
			desc[fd.FD] = fd.Desc
		}
		calls = append(calls, s.Name)
	}
	best, bestN := -1, uint64(0)
	for fd, n := range perFD {
		if n > bestN || n == bestN && fd < best {
			best, bestN = fd, n
		}
	}
	n := float64(bestN)
	if best < 0 || n/o.Seconds < WriteRate || n/total < WriteShare {
		return nil
	}
	fd := fdString(syscalls.FD{FD: best, Desc: desc[best]})
	v := newVerdict(WriteStorm, t)
	v.Syscall, v.FD = str(calls[0]), str(fd)
	v.Summary = fmt.Sprintf("thread %s floods fd %s with small writes: %s, each a syscall", t.Name, fd, rate(n/o.Seconds))
	v.Evidence = append([]string{cpuLine(t),
		fmt.Sprintf("%s to fd %s %s (%.1f%% of the thread's calls)", strings.Join(calls, "/"), fd, rate(n/o.Seconds), pct(n, total))}, stackLine(t)...)
	v.Advice = "buffer the output and write it in larger blocks (stdio full buffering, a log library's buffered appender); lower the log level; rate-limit repeated messages"
	return v
}

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

// spinHint reports whether an instruction is a spin-wait hint.
func spinHint(text string) bool {
	op, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(text)), " ")
	return op == "pause" || op == "yield"
}

func userSpin(o *Observation, t *Thread) *Verdict {
	c := t.Code
	if o.NoSyscalls || c == nil || c.Samples == 0 || t.CPU.Total <= 0 || t.CPU.User/t.CPU.Total < ComputeUser {
		return nil
	}
	n, where := spinSamples(c)
	if float64(n)/float64(c.Samples) < SpinShare {
		return nil
	}
	v := newVerdict(SpinYield, t)
	v.Code = c
	v.Summary = fmt.Sprintf("thread %s spins in user space in %s, waiting for a lock or a flag with a spin-wait (pause) loop instead of sleeping", t.Name, c.Function)
	v.Evidence = append([]string{cpuLine(t),
		fmt.Sprintf("%.0f%% of the samples in %s are %s", pct(float64(n), float64(c.Samples)), c.Function, where),
		fmt.Sprintf("%s syscalls: it never blocks", rate(float64(t.calls())/o.Seconds))}, stackLine(t)...)
	v.Advice = "bound the spin and then block (futex, pthread mutex or condition variable, which spin briefly and then sleep); never spin on a single core machine"
	return v
}

// spinSamples counts the samples of c in spin-wait code, and says where
// they are. A spin is told by the code's structure: the loop around the
// hottest instruction holds a spin-wait hint, wherever in the loop the
// samples land (a timer sample, on a machine without hardware counters,
// lands after the PAUSE, never on it; a slow load spreads them). Without
// a loop, the samples on a hint or just after one.
func spinSamples(c *Code) (int, string) {
	var n int
	if l := c.Loop; l != nil {
		hint := false
		for _, in := range c.Instructions {
			if in.Addr >= l.Start && in.Addr < l.End {
				n += in.Samples
				hint = hint || spinHint(in.Text)
			}
		}
		if hint {
			return n, fmt.Sprintf("in a %d-byte loop at %#x that holds a spin-wait (pause) instruction", l.End-l.Start, l.Start)
		}
	}
	n = 0
	for i, in := range c.Instructions {
		if spinHint(in.Text) || i > 0 && spinHint(c.Instructions[i-1].Text) {
			n += in.Samples
		}
	}
	return n, "on its spin-wait instruction or just after it"
}

func computeLoop(o *Observation, t *Thread) *Verdict {
	r := float64(t.calls()) / o.Seconds
	if o.NoSyscalls || t.load() < ComputeCPU || t.CPU.Total <= 0 || t.CPU.User/t.CPU.Total < ComputeUser || r >= ComputeMaxRate {
		return nil
	}
	v := newVerdict(ComputeLoop, t)
	fn := "its code"
	if t.Code != nil {
		fn, v.Code = t.Code.Function, t.Code
	} else if len(v.Stack) > 0 {
		fn = v.Stack[0]
	}
	v.Summary = fmt.Sprintf("thread %s computes in user space, in %s, with hardly a syscall: a loop that does not end or does more work than it should", t.Name, fn)
	v.Evidence = append([]string{cpuLine(t), fmt.Sprintf("%s syscalls", rate(r))}, stackLine(t)...)
	if c := t.Code; c != nil && len(c.Instructions) > 0 && t.Samples > 0 {
		hot := slices.MaxFunc(c.Instructions, func(a, b Instruction) int { return a.Samples - b.Samples })
		v.Evidence = append(v.Evidence, fmt.Sprintf("%.0f%% of its samples in %s; hottest instruction %#x %s (%d samples)",
			pct(float64(c.Samples), float64(t.Samples)), c.Function, hot.Addr, hot.Text, hot.Samples))
	}
	v.Advice = "look at the loop in " + fn + ": its exit condition and the work per iteration (the hottest instructions show where); if the work is legitimate, it needs a better algorithm or more cores"
	return v
}

// hottest returns the syscall of the family with the highest by().
func hottest(t *Thread, family []string, by func(*syscalls.Syscall) uint64) *syscalls.Syscall {
	var best *syscalls.Syscall
	for i := range t.Syscalls {
		s := &t.Syscalls[i]
		if slices.Contains(family, s.Name) && (best == nil || by(s) > by(best)) {
			best = s
		}
	}
	return best
}
