package sys

import (
	"errors"
	"fmt"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Ptrace requests act on a tracee only when made from the very OS thread
// that attached it: a caller locks its goroutine to its thread
// (runtime.LockOSThread) for the whole life of a trace.

// Ptrace options and events cpuwhy uses (ptrace(2)). PTRACE_O_EXITKILL is
// deliberately absent: if cpuwhy dies, the kernel detaches and the target
// lives on.
const (
	PtraceOTraceSysGood = unix.PTRACE_O_TRACESYSGOOD
	PtraceOTraceClone   = unix.PTRACE_O_TRACECLONE
	PtraceOTraceExec    = unix.PTRACE_O_TRACEEXEC

	PtraceEventClone = unix.PTRACE_EVENT_CLONE
	PtraceEventFork  = unix.PTRACE_EVENT_FORK
	PtraceEventVfork = unix.PTRACE_EVENT_VFORK
	PtraceEventExec  = unix.PTRACE_EVENT_EXEC
	PtraceEventStop  = unix.PTRACE_EVENT_STOP
)

func ptrace(req, tid int, addr, data uintptr) error {
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, uintptr(req), uintptr(tid), addr, data, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// PtraceSeize attaches to thread tid without stopping it.
func PtraceSeize(tid, options int) error {
	if err := ptrace(unix.PTRACE_SEIZE, tid, 0, uintptr(options)); err != nil {
		return fmt.Errorf("ptrace(SEIZE, %d): %w", tid, err)
	}
	return nil
}

// PtraceInterrupt asks a seized, running thread to stop.
func PtraceInterrupt(tid int) error {
	if err := ptrace(unix.PTRACE_INTERRUPT, tid, 0, 0); err != nil {
		return fmt.Errorf("ptrace(INTERRUPT, %d): %w", tid, err)
	}
	return nil
}

// PtraceSyscall resumes a stopped thread until its next syscall entry or
// exit, delivering signal sig (0: none).
func PtraceSyscall(tid int, sig syscall.Signal) error {
	if err := ptrace(unix.PTRACE_SYSCALL, tid, 0, uintptr(sig)); err != nil {
		return fmt.Errorf("ptrace(SYSCALL, %d): %w", tid, err)
	}
	return nil
}

// PtraceListen leaves a thread in group-stop while letting it report the
// SIGCONT that ends it.
func PtraceListen(tid int) error {
	if err := ptrace(unix.PTRACE_LISTEN, tid, 0, 0); err != nil {
		return fmt.Errorf("ptrace(LISTEN, %d): %w", tid, err)
	}
	return nil
}

// PtraceDetach detaches a stopped thread, delivering signal sig (0: none).
func PtraceDetach(tid int, sig syscall.Signal) error {
	if err := ptrace(unix.PTRACE_DETACH, tid, 0, uintptr(sig)); err != nil {
		return fmt.Errorf("ptrace(DETACH, %d): %w", tid, err)
	}
	return nil
}

// PtraceEventMsg returns the message of a ptrace event stop: the new
// thread's TID for a clone, the former TID for an exec.
func PtraceEventMsg(tid int) (uint64, error) {
	var msg uint64
	if err := ptrace(unix.PTRACE_GETEVENTMSG, tid, 0, uintptr(unsafe.Pointer(&msg))); err != nil {
		return 0, fmt.Errorf("ptrace(GETEVENTMSG, %d): %w", tid, err)
	}
	return msg, nil
}

// SyscallInfo is what PTRACE_GET_SYSCALL_INFO tells of a syscall stop.
type SyscallInfo struct {
	Op    uint8 // SyscallInfoEntry, SyscallInfoExit or another
	Nr    uint64
	Arg0  uint64
	Arg1  uint64
	Rval  int64
	Error bool
}

// Operations of SyscallInfo.
const (
	SyscallInfoNone  = unix.PTRACE_SYSCALL_INFO_NONE
	SyscallInfoEntry = unix.PTRACE_SYSCALL_INFO_ENTRY
	SyscallInfoExit  = unix.PTRACE_SYSCALL_INFO_EXIT
)

// ErrNoSyscallInfo is returned by PtraceSyscallInfo on kernels before 5.3,
// which lack PTRACE_GET_SYSCALL_INFO.
var ErrNoSyscallInfo = errors.New("PTRACE_GET_SYSCALL_INFO needs Linux 5.3")

// PtraceSyscallInfo reads what the kernel says of the syscall stop tid is
// in. It does not allocate.
func PtraceSyscallInfo(tid int, info *SyscallInfo) error {
	// struct ptrace_syscall_info: op u8, pad [3]u8, arch u32,
	// instruction_pointer u64, stack_pointer u64, then a union of
	// entry {nr u64, args [6]u64} and exit {rval s64, is_error u8}.
	var raw [88]byte
	err := ptrace(unix.PTRACE_GET_SYSCALL_INFO, tid, uintptr(len(raw)), uintptr(unsafe.Pointer(&raw)))
	if err == unix.EIO || err == unix.EINVAL {
		return ErrNoSyscallInfo
	}
	if err != nil {
		return fmt.Errorf("ptrace(GET_SYSCALL_INFO, %d): %w", tid, err)
	}
	u64 := func(off int) uint64 { return *(*uint64)(unsafe.Pointer(&raw[off])) }
	*info = SyscallInfo{Op: raw[0]}
	switch info.Op {
	case SyscallInfoEntry:
		info.Nr, info.Arg0, info.Arg1 = u64(24), u64(32), u64(40)
	case SyscallInfoExit:
		info.Rval, info.Error = int64(u64(24)), raw[32] != 0
	}
	return nil
}

// SyscallRegs are the registers of a syscall stop that cpuwhy reads where
// PTRACE_GET_SYSCALL_INFO is missing. At an exit stop Ret holds the result;
// Arg0 is only meaningful at an entry stop on architectures (arm64) whose
// first argument register also returns the result.
type SyscallRegs struct {
	Nr   uint64
	Arg0 uint64
	Arg1 uint64
	Ret  int64
	// Entry is set when the registers themselves say this is an entry
	// stop, and EntryKnown when they can say at all.
	Entry, EntryKnown bool
}

// PtraceGetSyscallRegs reads the syscall registers of stopped thread tid.
func PtraceGetSyscallRegs(tid int) (SyscallRegs, error) {
	r, err := getSyscallRegs(tid)
	if err != nil {
		return SyscallRegs{}, fmt.Errorf("reading registers of %d: %w", tid, err)
	}
	return r, nil
}

// WaitStatus is the status of a thread reported by WaitTracee.
type WaitStatus = unix.WaitStatus

// WaitTracee reaps one event of a tracee of the calling thread, or returns
// 0 when nohang is set and none is pending. __WNOTHREAD keeps it from
// reaping the children that other goroutines started (and wait for);
// __WALL makes it see threads, not only processes. ECHILD means the calling
// thread traces nothing any more.
func WaitTracee(status *WaitStatus, nohang bool) (int, error) {
	opts := unix.WALL | unix.WNOTHREAD
	if nohang {
		opts |= unix.WNOHANG
	}
	for {
		tid, err := unix.Wait4(-1, status, opts, nil)
		if err == unix.EINTR {
			continue
		}
		return tid, err
	}
}

// Gettid returns the calling thread's ID: the tracer that /proc's
// TracerPid names is a thread, not a process.
func Gettid() int { return unix.Gettid() }
