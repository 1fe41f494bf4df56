package pstack

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/stack"
	"github.com/cpuwhy/cpuwhy/internal/sys"
	"github.com/cpuwhy/cpuwhy/internal/unwind"
)

// stackCopy is how much of a thread's stack is copied from its stack
// pointer: deep enough for any real stack's frames, as perf's maximum.
const stackCopy = 64 << 10

// Thread is one thread's stack at the moment it was stopped.
type Thread struct {
	TID    int
	Name   string
	State  string // as /proc showed it before the stop
	Frames []stack.Frame
	Stop   unwind.Stop   // why the unwinding ended
	Held   time.Duration // how long the thread was stopped
	Err    error         // why this thread has no stack
}

// Options configure a dump.
type Options struct {
	FS        proc.FS
	NsPID     int // the process's PID in its own namespace (runtimes' files); 0: the same
	DebugDirs []string
}

// Dump takes the stack of every thread of pid.
func Dump(ctx context.Context, pid int, opts Options) ([]Thread, error) {
	p, err := proc.NewScanner(opts.FS).ReadProcess(pid, true)
	if err != nil {
		return nil, err
	}
	snaps := make([]snapshot, 0, len(p.Threads))
	// ptrace requests must come from the thread that attached.
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		for _, th := range p.Threads {
			if ctx.Err() != nil {
				return
			}
			s := take(th.PID)
			s.name, s.state = th.Comm, string(th.State)
			snaps = append(snaps, s)
		}
	}()
	<-done
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	r, err := stack.New(pid, stack.Options{FS: opts.FS, NsPID: opts.NsPID, DebugDirs: opts.DebugDirs})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	out := make([]Thread, 0, len(snaps))
	for _, s := range snaps {
		t := Thread{TID: s.tid, Name: s.name, State: s.state, Held: s.held, Err: s.err}
		if errors.Is(s.err, errGone) {
			continue
		}
		if s.err == nil {
			var pcs []uint64
			pcs, t.Stop = r.Unwind(s.regs, s.stack)
			t.Frames = slices.Clone(r.Frames(s.tid, nil, pcs))
		}
		out = append(out, t)
	}
	return out, nil
}

// snapshot is what was read of one thread while it was stopped.
type snapshot struct {
	tid         int
	name, state string
	regs        unwind.Regs
	stack       unwind.StackCopy
	held        time.Duration
	err         error
}

var errGone = errors.New("thread ended")

// take stops thread tid, reads its registers and stack, and lets it go,
// handing back any signal that arrived meanwhile.
func take(tid int) (s snapshot) {
	s.tid = tid
	if err := sys.PtraceSeize(tid, 0); err != nil {
		if errors.Is(err, unix.ESRCH) {
			s.err = errGone
		} else {
			s.err = fmt.Errorf("attaching to thread %d: %w", tid, err)
		}
		return s
	}
	began := time.Now()
	var resend syscall.Signal
	defer func() {
		// Detach needs a stopped tracee: a failed stop leaves nothing to
		// hand back but the thread still to be released, which the kernel
		// does when it exits or when cpuwhy does.
		if err := sys.PtraceDetach(tid, resend); err != nil && s.err == nil && !errors.Is(err, unix.ESRCH) {
			s.err = fmt.Errorf("detaching from thread %d: %w", tid, err)
		}
		s.held = time.Since(began)
	}()
	if err := sys.PtraceInterrupt(tid); err != nil {
		s.err = fmt.Errorf("stopping thread %d: %w", tid, err)
		return s
	}
	sig, err := waitStop(tid)
	if err != nil {
		s.err = err
		return s
	}
	resend = sig
	r, err := sys.PtraceGetUserRegs(tid)
	if err != nil {
		s.err = err
		return s
	}
	buf := make([]byte, stackCopy)
	n, err := sys.ReadProcessMemory(tid, buf, r.SP)
	if err != nil {
		n = 0 // the registers alone still name the innermost frame
	}
	s.regs = unwind.Regs{PC: r.PC, SP: r.SP, FP: r.FP, LR: r.LR}
	s.stack = unwind.StackCopy{Base: r.SP, Data: buf[:n]}
	return s
}

// waitStop waits for tid's stop and returns the signal to hand back on
// detach: none for the stop PTRACE_INTERRUPT asked for (a PTRACE_EVENT_STOP
// trap) or a group-stop, the signal itself for a signal-delivery-stop.
func waitStop(tid int) (syscall.Signal, error) {
	for {
		var st sys.WaitStatus
		got, err := sys.WaitTracee(&st, false)
		if err != nil {
			return 0, fmt.Errorf("waiting for thread %d to stop: %w", tid, err)
		}
		if got != tid {
			continue
		}
		switch {
		case st.Exited() || st.Signaled():
			return 0, errGone
		case !st.Stopped():
			continue
		case st.StopSignal() == syscall.SIGTRAP && st.TrapCause() == unix.PTRACE_EVENT_STOP:
			return 0, nil
		case st.TrapCause() == unix.PTRACE_EVENT_STOP:
			return 0, nil // a group-stop (SIGSTOP and friends) reported as an event stop
		default:
			return st.StopSignal(), nil
		}
	}
}
