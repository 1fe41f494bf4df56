package sys

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// ReadProcessMemory copies len(p) bytes of process pid from addr into p
// with process_vm_readv, which needs the right to ptrace pid but no stop.
// It returns how many bytes were copied: a read that runs into an
// unmapped page stops there (n < len(p)) and only fails when not even the
// first byte could be read.
func ReadProcessMemory(pid int, p []byte, addr uint64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	local := []unix.Iovec{{Base: &p[0]}}
	local[0].SetLen(len(p))
	remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: len(p)}}
	n, err := unix.ProcessVMReadv(pid, local, remote, 0)
	if err != nil {
		return 0, fmt.Errorf("reading %d bytes at %#x of %d: %w", len(p), addr, pid, err)
	}
	return n, nil
}

// UserRegs are the registers a stack unwinder starts from: the program
// counter, the stack pointer and the frame pointer (rip, rsp, rbp on
// x86-64; pc, sp, x29 on arm64, where LR is x30).
type UserRegs struct {
	PC, SP, FP, LR uint64
}

// PtraceGetUserRegs reads the unwinding registers of stopped thread tid.
func PtraceGetUserRegs(tid int) (UserRegs, error) {
	r, err := getUserRegs(tid)
	if err != nil {
		return UserRegs{}, fmt.Errorf("reading registers of %d: %w", tid, err)
	}
	return r, nil
}
