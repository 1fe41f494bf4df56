package pstack

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
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
	NoAttach  bool // forbid asking a runtime for its names (--no-attach)
}

// Errors of a dump that has nothing to show.
var (
	// ErrSelf: the target is the dumping process itself, whose threads
	// the kernel does not let it trace.
	ErrSelf = errors.New("a process cannot stop its own threads")
	// ErrNoStacks: no thread of the target could be stopped.
	ErrNoStacks = errors.New("no thread could be stopped")
	// ErrTraced: a thread already has a tracer, and a thread has one at
	// a time.
	ErrTraced = errors.New("already traced")
	// ErrExited: the target exited during the dump, and what was read of
	// it cannot be named without its memory map.
	ErrExited = errors.New("exited during the dump")
)

// TracedError is the attach a thread refused because another process
// traces it (strace, gdb, a debugger, another cpuwhy dump).
type TracedError struct {
	TID       int
	TracerPID int
	Tracer    string // the tracer's name, "" when it could not be read
}

func (e *TracedError) Error() string {
	return fmt.Sprintf("thread %d is already traced by %s, and a thread has one tracer at a time", e.TID, e.tracer())
}

func (e *TracedError) Unwrap() error { return ErrTraced }

func (e *TracedError) tracer() string {
	if e.Tracer == "" {
		return fmt.Sprintf("PID %d", e.TracerPID)
	}
	return fmt.Sprintf("PID %d (%s)", e.TracerPID, e.Tracer)
}

// Dump takes the stack of every thread of pid. It fails when it has no
// stack to show: pid is the calling process (ErrSelf), every thread refused
// to be stopped (ErrNoStacks, with ErrTraced when another tracer holds
// them), or pid exited before its stacks were named (ErrExited).
func Dump(ctx context.Context, pid int, opts Options) ([]Thread, error) {
	if pid == os.Getpid() {
		return nil, fmt.Errorf("PID %d is this cpuwhy dump itself: %w to read their stacks", pid, ErrSelf)
	}
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
			if errors.Is(s.err, unix.EPERM) {
				s.err = refused(opts.FS, pid, th.PID, s.err)
			}
			snaps = append(snaps, s)
		}
	}()
	<-done
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	if err := noStacks(pid, p.Comm, snaps); err != nil {
		return nil, err
	}
	exited := func() error {
		return fmt.Errorf("PID %d (%s) %w: %d of its %d threads were read before it ended, and their stacks cannot be named without its memory map",
			pid, p.Comm, ErrExited, countRead(snaps), len(p.Threads))
	}
	maps, err := opts.FS.Maps(pid)
	if errors.Is(err, proc.ErrGone) || err == nil && len(maps) == 0 {
		return nil, exited() // a zombie's maps are empty
	}
	r, err := stack.New(pid, stack.Options{FS: opts.FS, NsPID: opts.NsPID, DebugDirs: opts.DebugDirs, NoAttach: opts.NoAttach})
	if errors.Is(err, proc.ErrGone) {
		return nil, exited()
	}
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
	// Frames named after the process ended would be "(unmapped)" or
	// module+offset where it had names: a dump of the dead is not shown.
	if now, err := proc.NewScanner(opts.FS).ReadProcess(pid, false); err != nil || now.Exited() || now.StartTime != p.StartTime {
		return nil, exited()
	}
	return out, nil
}

// countRead counts the threads whose registers and stack were read.
func countRead(snaps []snapshot) int {
	n := 0
	for _, s := range snaps {
		if s.err == nil {
			n++
		}
	}
	return n
}

// noStacks returns why no thread could be stopped, or nil when one was.
func noStacks(pid int, name string, snaps []snapshot) error {
	var first error
	var tracer *TracedError
	sameTracer, live := true, 0
	for _, s := range snaps {
		if s.err == nil {
			return nil
		}
		if errors.Is(s.err, errGone) {
			continue
		}
		live++
		first = cmp.Or(first, s.err)
		var te *TracedError
		switch {
		case !errors.As(s.err, &te):
			sameTracer = false
		case tracer == nil:
			tracer = te
		case te.TracerPID != tracer.TracerPID:
			sameTracer = false
		}
	}
	switch {
	case live == 0:
		return fmt.Errorf("PID %d (%s) %w: its threads ended before any could be stopped", pid, name, ErrExited)
	case tracer != nil && sameTracer:
		return fmt.Errorf("PID %d (%s): %w: every thread is %w by %s, and a thread has one tracer at a time; dump it once that tracer detaches",
			pid, name, ErrNoStacks, ErrTraced, tracer.tracer())
	}
	return fmt.Errorf("PID %d (%s): %w: %d threads refused (first: %w)", pid, name, ErrNoStacks, live, first)
}

// refused explains an attach the kernel refused with EPERM after the
// access check passed: the thread already has a tracer.
func refused(fs proc.FS, pid, tid int, err error) error {
	st, serr := fs.TaskStatus(pid, tid)
	if serr != nil || st.TracerPID == 0 {
		return err
	}
	te := &TracedError{TID: tid, TracerPID: st.TracerPID}
	if p, err := proc.NewScanner(fs).ReadProcess(st.TracerPID, false); err == nil {
		te.Tracer = p.Comm
	}
	return te
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
