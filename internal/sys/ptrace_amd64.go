package sys

import "golang.org/x/sys/unix"

func getSyscallRegs(tid int) (SyscallRegs, error) {
	var r unix.PtraceRegs
	if err := unix.PtraceGetRegs(tid, &r); err != nil {
		return SyscallRegs{}, err
	}
	// At syscall entry the kernel has already set rax to -ENOSYS; a call
	// that really returns ENOSYS looks the same, so the tracer trusts this
	// only to resynchronise, not to decide.
	return SyscallRegs{
		Nr:         r.Orig_rax,
		Arg0:       r.Rdi,
		Arg1:       r.Rsi,
		Ret:        int64(r.Rax),
		Entry:      int64(r.Rax) == -int64(unix.ENOSYS),
		EntryKnown: false,
	}, nil
}

func getUserRegs(tid int) (UserRegs, error) {
	var r unix.PtraceRegs
	if err := unix.PtraceGetRegs(tid, &r); err != nil {
		return UserRegs{}, err
	}
	return UserRegs{PC: r.Rip, SP: r.Rsp, FP: r.Rbp}, nil
}
