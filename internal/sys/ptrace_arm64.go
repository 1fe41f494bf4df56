package sys

import "golang.org/x/sys/unix"

func getSyscallRegs(tid int) (SyscallRegs, error) {
	var r unix.PtraceRegsArm64
	if err := unix.PtraceGetRegSetArm64(tid, unix.NT_PRSTATUS, &r); err != nil {
		return SyscallRegs{}, err
	}
	// x8 holds the number; x0 the first argument at entry and the result
	// at exit. At a syscall stop the kernel sets x7 to 0 at entry and 1 at
	// exit (arch/arm64/kernel/ptrace.c, report_syscall), so the direction
	// is known.
	return SyscallRegs{
		Nr:         r.Regs[8],
		Arg0:       r.Regs[0],
		Arg1:       r.Regs[1],
		Ret:        int64(r.Regs[0]),
		Entry:      r.Regs[7] == 0,
		EntryKnown: true,
	}, nil
}

func getUserRegs(tid int) (UserRegs, error) {
	var r unix.PtraceRegsArm64
	if err := unix.PtraceGetRegSetArm64(tid, unix.NT_PRSTATUS, &r); err != nil {
		return UserRegs{}, err
	}
	return UserRegs{PC: r.Pc, SP: r.Sp, FP: r.Regs[29], LR: r.Regs[30]}, nil
}
