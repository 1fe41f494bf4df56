package ptrace

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/sys"
	"github.com/cpuwhy/cpuwhy/internal/syscalls"
	"github.com/cpuwhy/cpuwhy/internal/sysno"
)

// Bounds of a trace.
const (
	// MaxDuration caps the window whatever Options.Duration asks: the
	// target runs much slower for as long as it is traced.
	MaxDuration = 30 * time.Second
	// baselineWindow is how long the target's CPU rate is measured
	// untraced, before attaching.
	baselineWindow = 200 * time.Millisecond
	// detachTimeout bounds the wait for every thread to stop so it can be
	// detached. A thread that does not stop in time (stuck in an
	// uninterruptible sleep) stays traced until cpuwhy exits, when the
	// kernel detaches it.
	detachTimeout = 5 * time.Second
	// spinFor is how long the tracer polls for the next stop before it
	// sleeps until SIGCHLD: a busy target stops again within microseconds,
	// and a sleep and wakeup per stop costs as much again. Longer spins
	// took CPU from the target on a two-core machine (measured on busypoll:
	// no clear gain past 10-20 µs, a loss at 200 µs).
	spinFor = 20 * time.Microsecond
	// maxAttachPasses bounds the re-listing of /proc/PID/task while
	// threads keep appearing faster than they are seized.
	maxAttachPasses = 100
	// minBaselineCPU is the CPU rate (in CPUs) under which a slowdown is
	// not estimated: a mostly idle target's CPU rate says little.
	minBaselineCPU = 0.05
)

// seizeOptions: report syscall stops as SIGTRAP|0x80 so they cannot be
// mistaken for a real SIGTRAP, follow new threads, and learn the former
// TID of a thread that execs. Never PTRACE_O_EXITKILL: if cpuwhy is killed
// the kernel detaches and the target keeps running.
const seizeOptions = sys.PtraceOTraceSysGood | sys.PtraceOTraceClone | sys.PtraceOTraceExec

// Test hooks, run by the tracer's thread: attached once every thread is
// seized; started when a thread is first resumed to be traced, and
// detaching right before it is let go, both while the thread is stopped.
var (
	attached  func(pid int)
	started   func(tid int)
	detaching func(tid int)
)

// Tracer is the ptrace syscalls.Tracer.
type Tracer struct {
	// FS is the proc filesystem the target's threads are listed in; the
	// zero value reads /proc.
	FS proc.FS
}

var _ syscalls.Tracer = (*Tracer)(nil)

// New returns a Tracer reading the host's /proc.
func New() *Tracer { return &Tracer{} }

// Trace attaches to every thread of pid, counts its syscalls for
// opts.Duration (at most MaxDuration) and detaches, leaving the target
// running as it was. It returns the partial profile and no error when the
// target exits during the window (Profile.Ended says so), and the partial
// profile with ctx's error when ctx is canceled. Errors match
// syscalls.ErrNotSupported when ptrace is not permitted (no
// CAP_SYS_PTRACE, Yama, or another tracer such as a debugger is attached)
// and proc.ErrGone when the process does not exist.
func (t *Tracer) Trace(ctx context.Context, pid int, opts syscalls.Options) (*syscalls.Profile, error) {
	if err := opts.Validate(); err != nil {
		return nil, err // before the target is stopped even once
	}
	prof := &syscalls.Profile{
		PID:       pid,
		Mechanism: syscalls.Ptrace,
		Stats:     map[syscalls.Key]*syscalls.Stat{},
		Threads:   map[int]string{},
	}
	opts = normalize(opts, prof)

	s := &session{
		pid:   pid,
		fs:    t.FS,
		opts:  opts,
		prof:  prof,
		arch:  runtime.GOARCH,
		prctl: sysno.Number(runtime.GOARCH, "prctl"),
		futex: sysno.Number(runtime.GOARCH, "futex"),
	}
	base, baseErr := s.cpuRate(ctx, baselineWindow)
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	type result struct {
		prof *syscalls.Profile
		err  error
	}
	done := make(chan result, 1)
	go func() {
		// Every ptrace request must come from the thread that attached.
		// The goroutine never unlocks: when it ends, its thread ends too,
		// and the kernel detaches anything this thread still traces.
		runtime.LockOSThread()
		p, err := s.run(ctx)
		done <- result{p, err}
	}()
	r := <-done
	if r.prof != nil {
		s.estimateSlowdown(base, baseErr)
	}
	return r.prof, r.err
}

// normalize applies the defaults and bounds of opts, noting in prof what
// was changed.
func normalize(opts syscalls.Options, prof *syscalls.Profile) syscalls.Options {
	if opts.Duration <= 0 {
		opts.Duration = syscalls.DefaultDuration
	}
	if opts.Duration > MaxDuration {
		prof.Notes = append(prof.Notes, fmt.Sprintf(
			"ptrace window cut from %s to %s: the target is much slower while traced", opts.Duration, MaxDuration))
		opts.Duration = MaxDuration
	}
	if opts.MaxKeys <= 0 {
		opts.MaxKeys = syscalls.DefaultMaxKeys
	}
	if opts.TimeEvery < 0 {
		opts.TimeEvery = 0
	}
	if opts.TimeEvery > 0 {
		prof.Notes = append(prof.Notes,
			"ptrace durations include the tracer's stop overhead (microseconds per call): compare them with each other, not with untraced timings")
	}
	if opts.Stacks {
		prof.Notes = append(prof.Notes, "the ptrace tracer records no stacks")
	}
	return opts
}

// thread is what the tracer knows of one traced thread.
type thread struct {
	tid int
	// stopped is set while the thread sits in a stop this tracer has been
	// told of and not yet ended; sig is then the signal to give back when
	// it resumes or is detached (a signal-delivery-stop's).
	stopped bool
	sig     syscall.Signal
	// inSyscall is set between an entry stop and its exit stop; nr and
	// arg0 are the entry's.
	inSyscall bool
	nr        uint64
	arg0      uint64
	op        string // futex's operation (Key.Op), "" for other calls
	// calls counts entries, to time one in opts.TimeEvery; entryAt is when
	// the entry of a timed call was seen, 0 for an untimed call.
	calls   uint64
	entryAt time.Duration
	// resumed is set once the thread has been resumed to be traced.
	resumed bool
}

// session is one trace, run by one goroutine locked to its thread.
type session struct {
	pid   int
	fs    proc.FS
	opts  syscalls.Options
	prof  *syscalls.Profile
	arch  string
	prctl int
	futex int // the syscall number of futex, whose calls are keyed by operation

	threads map[int]*thread
	// detached remembers the threads let go while draining, so that a
	// late clone event does not make the tracer wait for them.
	detached map[int]bool
	// syscallInfo is 1 when PTRACE_GET_SYSCALL_INFO works, -1 when it does
	// not, 0 until known.
	syscallInfo int

	clock    time.Time // the monotonic origin of entryAt
	sigchld  chan os.Signal
	timer    *time.Timer
	calls    uint64 // syscalls counted
	cpuStart time.Duration
	cpuEnd   time.Duration
	cpuOK    bool
	end      time.Time
}

// errWindow is next's report that the deadline passed.
var errWindow = errors.New("window over")

// run attaches, traces until the window ends, ctx is canceled or the
// target exits, and detaches on every path, panics included.
func (s *session) run(ctx context.Context) (prof *syscalls.Profile, err error) {
	s.threads = map[int]*thread{}
	s.detached = map[int]bool{}
	s.clock = time.Now()
	s.sigchld = make(chan os.Signal, 1)
	signal.Notify(s.sigchld, syscall.SIGCHLD)
	defer signal.Stop(s.sigchld)
	s.timer = time.NewTimer(time.Hour)
	defer s.timer.Stop()

	defer func() {
		r := recover()
		derr := s.detachAll()
		if r != nil {
			prof, err = nil, fmt.Errorf("internal error tracing %d (detached: %v): %v", s.pid, derr == nil, r)
			return
		}
		if derr != nil {
			err = errors.Join(err, derr)
		}
	}()

	if s.opts.Ready != nil {
		s.opts.Ready()
	}
	if err := s.attach(); err != nil {
		return nil, err
	}
	start := time.Now()
	s.prof.Start = start
	cpu, cpuErr := s.cpuTime()
	s.cpuStart, s.cpuOK = cpu, cpuErr == nil
	if attached != nil {
		attached(s.pid)
	}

	deadline := start.Add(s.opts.Duration)
	for {
		tid, status, err := s.next(ctx, deadline)
		if err == errWindow || (err != nil && ctx.Err() != nil) {
			break
		}
		if errors.Is(err, syscall.ECHILD) {
			s.ended(start)
			break
		}
		if err != nil {
			return nil, fmt.Errorf("waiting for the threads of %d: %w", s.pid, err)
		}
		if err := s.handle(tid, status, false); err != nil {
			return nil, err
		}
		if len(s.threads) == 0 || (tid == s.pid && exited(status)) {
			s.ended(start)
			break
		}
	}
	s.end = time.Now()
	s.prof.Duration = s.end.Sub(start)
	if s.prof.Ended == "" {
		if cpu, err := s.cpuTime(); err == nil {
			s.cpuEnd = cpu
		} else {
			s.cpuOK = false
		}
		s.refreshNames()
	}
	if err := ctx.Err(); err != nil {
		return s.prof, err
	}
	return s.prof, nil
}

func exited(st sys.WaitStatus) bool { return st.Exited() || st.Signaled() }

func (s *session) ended(start time.Time) {
	if s.prof.Ended == "" {
		s.prof.Ended = fmt.Sprintf("process %d exited %s into the window; the profile covers that part",
			s.pid, time.Since(start).Round(time.Millisecond))
	}
}

// attach seizes every thread, listing /proc/PID/task again until a pass
// finds no thread it has not seized: threads started by a seized thread
// are attached by the kernel (PTRACE_O_TRACECLONE), so the listing
// converges. Then it interrupts each so the first stop can start syscall
// tracing.
func (s *session) attach() error {
	dir, err := sys.OpenDir(s.fs.PIDPath(s.pid, "task"))
	if err != nil {
		return fmt.Errorf("%w: listing the threads of %d: %w", proc.ErrGone, s.pid, err)
	}
	defer dir.Close()
	scratch := make([]byte, 16<<10)
	var tids []int
	for pass := 0; ; pass++ {
		if pass == maxAttachPasses {
			return fmt.Errorf("attaching to %d: threads kept appearing after %d listings", s.pid, pass)
		}
		tids, err = dir.Numbers(tids[:0], scratch)
		if err != nil {
			return fmt.Errorf("%w: listing the threads of %d: %w", proc.ErrGone, s.pid, err)
		}
		fresh := 0
		for _, tid := range tids {
			if s.threads[tid] != nil {
				continue
			}
			err := sys.PtraceSeize(tid, seizeOptions)
			switch {
			case err == nil:
			case errors.Is(err, syscall.ESRCH):
				continue // exited since the listing
			case errors.Is(err, syscall.EPERM) && s.tracerOf(tid) == sys.Gettid():
				// Started by a seized thread: already ours.
			case errors.Is(err, syscall.EPERM):
				return s.permission(tid, err)
			default:
				return fmt.Errorf("attaching to thread %d of %d: %w", tid, s.pid, err)
			}
			s.newThread(tid)
			fresh++
		}
		if len(s.threads) == 0 {
			return fmt.Errorf("%w: process %d has no thread left to trace", proc.ErrGone, s.pid)
		}
		if fresh == 0 {
			break
		}
	}
	for tid := range s.threads {
		if err := sys.PtraceInterrupt(tid); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("stopping thread %d of %d: %w", tid, s.pid, err)
		}
	}
	return nil
}

// permission explains an EPERM from PTRACE_SEIZE.
func (s *session) permission(tid int, err error) error {
	if tracer := s.tracerOf(tid); tracer > 0 {
		return fmt.Errorf("%w: thread %d of %d is already traced by thread %d (a debugger or strace?): %w",
			syscalls.ErrNotSupported, tid, s.pid, tracer, err)
	}
	return fmt.Errorf("%w: ptrace of %d is not permitted (it needs CAP_SYS_PTRACE, and Yama's ptrace_scope may forbid it): %w",
		syscalls.ErrNotSupported, s.pid, err)
}

func (s *session) newThread(tid int) *thread {
	t := &thread{tid: tid}
	s.threads[tid] = t
	if _, ok := s.prof.Threads[tid]; !ok {
		s.prof.Threads[tid] = s.comm(tid)
	}
	return t
}

// next returns the next event of a traced thread, errWindow once deadline
// passes, ctx's error once it is canceled, and ECHILD when nothing is
// traced any more. It polls briefly, then sleeps until SIGCHLD says a
// tracee changed state.
func (s *session) next(ctx context.Context, deadline time.Time) (int, sys.WaitStatus, error) {
	var status sys.WaitStatus
	var spinUntil time.Time
	for {
		tid, err := sys.WaitTracee(&status, true)
		if err != nil {
			return 0, status, err
		}
		if tid > 0 {
			return tid, status, nil
		}
		now := time.Now()
		if !now.Before(deadline) {
			return 0, status, errWindow
		}
		if err := ctx.Err(); err != nil {
			return 0, status, err
		}
		if spinUntil.IsZero() {
			spinUntil = now.Add(spinFor)
		}
		if now.Before(spinUntil) {
			continue
		}
		s.timer.Reset(deadline.Sub(now))
		select {
		case <-s.sigchld:
		case <-s.timer.C:
		case <-ctx.Done():
		}
		spinUntil = time.Time{}
	}
}

// handle acts on one event of thread tid: it records a syscall stop and
// resumes the thread, or, when draining, detaches it.
func (s *session) handle(tid int, status sys.WaitStatus, draining bool) error {
	if exited(status) {
		delete(s.threads, tid)
		return nil
	}
	if !status.Stopped() {
		return nil
	}
	t := s.threads[tid]
	if t == nil {
		// A new thread's first stop can come before its parent's clone
		// event.
		t = s.newThread(tid)
	}
	t.stopped, t.sig = true, 0
	sig := status.StopSignal()
	event := int(status) >> 16 & 0xff
	listen := false
	switch {
	case sig == syscall.SIGTRAP|0x80:
		if !draining {
			s.syscallStop(t)
		}
	case event == sys.PtraceEventClone:
		msg, err := sys.PtraceEventMsg(tid)
		if err == nil && s.threads[int(msg)] == nil && !s.detached[int(msg)] {
			s.newThread(int(msg))
		}
	case event == sys.PtraceEventExec:
		// A thread other than the leader that execs takes the leader's
		// TID; the others are gone.
		if msg, err := sys.PtraceEventMsg(tid); err == nil && int(msg) != tid {
			if former := s.threads[int(msg)]; former != nil {
				delete(s.threads, int(msg))
				former.tid, former.stopped = tid, true
				s.threads[tid] = former
				t = former
			}
		}
		s.prof.Threads[tid] = s.comm(tid)
	case event == sys.PtraceEventStop:
		switch sig {
		case syscall.SIGSTOP, syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU:
			// Group-stop: the process was stopped, by a user or a
			// terminal. It stays stopped; PTRACE_LISTEN lets the tracer
			// see the SIGCONT that ends it.
			listen = true
		}
		// Otherwise our interrupt, a new thread's first stop, or the
		// end of a group-stop.
	case event != 0:
		// An event not asked for: continue.
	default:
		// Signal-delivery-stop: the signal is the target's, give it back.
		t.sig = sig
	}
	if draining {
		return s.detach(t)
	}
	if !t.resumed {
		t.resumed = true
		if started != nil {
			started(tid)
		}
	}
	var err error
	if listen {
		err = sys.PtraceListen(tid)
	} else {
		err = sys.PtraceSyscall(tid, t.sig)
	}
	if err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("resuming thread %d of %d: %w", tid, s.pid, err)
	}
	// ESRCH: killed meanwhile; its exit is still to be reported.
	t.stopped = false
	return nil
}

// syscallStop records an entry or exit stop of t.
func (s *session) syscallStop(t *thread) {
	if s.syscallInfo >= 0 {
		var info sys.SyscallInfo
		err := sys.PtraceSyscallInfo(t.tid, &info)
		switch {
		case err == nil:
			s.syscallInfo = 1
			switch info.Op {
			case sys.SyscallInfoEntry:
				s.entry(t, info.Nr, info.Arg0, info.Arg1)
			case sys.SyscallInfoExit:
				if t.inSyscall {
					s.exit(t, t.nr, t.arg0, info.Rval)
				}
			}
			return
		case errors.Is(err, sys.ErrNoSyscallInfo):
			s.syscallInfo = -1
		default:
			return // the thread was killed
		}
	}
	// Before Linux 5.3: tell entry from exit by toggling, unless the
	// registers say.
	regs, err := sys.PtraceGetSyscallRegs(t.tid)
	if err != nil {
		return
	}
	entry := !t.inSyscall
	if regs.EntryKnown {
		entry = regs.Entry
	} else if entry && !regs.Entry {
		// amd64: an entry stop has rax = -ENOSYS; this one does not, so
		// the entry was missed (arg0 survives in rdi on amd64).
		t.nr, t.arg0, t.op, t.inSyscall = regs.Nr, regs.Arg0, s.futexOp(regs.Nr, regs.Arg1), true
		entry = false
	}
	if entry {
		s.entry(t, regs.Nr, regs.Arg0, regs.Arg1)
		return
	}
	if t.inSyscall {
		s.exit(t, t.nr, t.arg0, regs.Ret)
	}
}

func (s *session) entry(t *thread, nr, arg0, arg1 uint64) {
	t.inSyscall, t.nr, t.arg0, t.op = true, nr, arg0, s.futexOp(nr, arg1)
	t.calls++
	t.entryAt = 0
	if s.opts.TimeEvery > 0 && t.calls%uint64(s.opts.TimeEvery) == 0 {
		t.entryAt = max(time.Since(s.clock), 1)
	}
}

// exit counts a call that returned ret (-4095..-1: an errno).
func (s *session) exit(t *thread, nr, arg0 uint64, ret int64) {
	t.inSyscall = false
	s.calls++
	key := syscalls.Key{TID: t.tid, Nr: int(nr), FD: syscalls.NoFD, Zero: ret == 0, Op: t.op}
	if ret < 0 && ret >= -4095 {
		key.Errno = int(-ret)
	}
	if sysno.TakesFD(s.arch, key.Nr) {
		key.FD = int(int32(uint32(arg0)))
	}
	if key.Nr == s.prctl && arg0 == prSetName && key.Errno == 0 {
		s.prof.Threads[t.tid] = s.comm(t.tid)
	}
	st := s.prof.Stats[key]
	if st == nil {
		if len(s.prof.Stats) >= s.opts.MaxKeys {
			s.prof.Dropped++
			return
		}
		st = &syscalls.Stat{}
		s.prof.Stats[key] = st
	}
	st.Count++
	if ret > 0 {
		st.Bytes += uint64(ret)
	}
	if t.entryAt > 0 {
		st.Observe(uint64(time.Since(s.clock) - t.entryAt))
	}
}

// futexOp names the operation of a call of syscall nr whose second
// argument is arg1 when nr is futex, as the eBPF tracer's key does: a WAKE
// that returned 0 woke nobody, a WAIT that returned 0 was woken.
func (s *session) futexOp(nr, arg1 uint64) string {
	if int(nr) != s.futex {
		return ""
	}
	return syscalls.FutexOp(int(uint32(arg1) &^ (futexPrivateFlag | futexClockRealtime)))
}

// FUTEX_PRIVATE_FLAG and FUTEX_CLOCK_REALTIME, the flags of futex's
// operation argument (FUTEX_CMD_MASK clears them).
const (
	futexPrivateFlag   = 128
	futexClockRealtime = 256
)

// prSetName is prctl's PR_SET_NAME: a thread renaming itself.
const prSetName = 15

// detach lets go of stopped thread t, giving back its pending signal.
func (s *session) detach(t *thread) error {
	if detaching != nil {
		detaching(t.tid)
	}
	err := sys.PtraceDetach(t.tid, t.sig)
	delete(s.threads, t.tid)
	s.detached[t.tid] = true
	if err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("detaching thread %d of %d: %w", t.tid, s.pid, err)
	}
	return nil
}

// detachAll detaches every thread: a stopped one at once, a running one
// after PTRACE_INTERRUPT has stopped it, handling whatever each reports
// first (a signal to give back, a new thread to detach too).
func (s *session) detachAll() error {
	var errs []error
	for _, t := range s.threads {
		if t.stopped {
			errs = append(errs, s.detach(t))
			continue
		}
		if err := sys.PtraceInterrupt(t.tid); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("stopping thread %d of %d to detach: %w", t.tid, s.pid, err))
		}
	}
	deadline := time.Now().Add(detachTimeout)
	for len(s.threads) > 0 {
		tid, status, err := s.next(context.Background(), deadline)
		if errors.Is(err, syscall.ECHILD) {
			break // nothing traced any more: the rest exited
		}
		if err != nil {
			left := make([]string, 0, len(s.threads))
			for tid := range s.threads {
				left = append(left, fmt.Sprint(tid))
			}
			sort.Strings(left)
			errs = append(errs, fmt.Errorf("threads %s of %d did not stop to be detached within %s; they stay traced until cpuwhy exits: %w",
				strings.Join(left, ", "), s.pid, detachTimeout, err))
			break
		}
		errs = append(errs, s.handle(tid, status, true))
	}
	clear(s.threads)
	return errors.Join(errs...)
}

// refreshNames reads again the names of the threads still traced: threads
// are often named after they start.
func (s *session) refreshNames() {
	for tid := range s.threads {
		if name := s.comm(tid); name != "" {
			s.prof.Threads[tid] = name
		}
	}
}

// comm reads the name of thread tid, or "" when it is gone.
func (s *session) comm(tid int) string {
	var buf [64]byte
	n, err := sys.ReadProcFile(s.fs.TaskPath(s.pid, tid, "comm"), buf[:])
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(buf[:n]), "\n")
}

// tracerOf returns the TID of the thread tracing thread tid, 0 when none
// or unknown.
func (s *session) tracerOf(tid int) int {
	var buf [4096]byte
	n, err := sys.ReadProcFile(s.fs.TaskPath(s.pid, tid, "status"), buf[:])
	if err != nil {
		return 0
	}
	return parseTracerPid(buf[:n])
}
