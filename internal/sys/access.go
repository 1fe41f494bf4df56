package sys

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// CheckPtraceAccess asks the kernel whether the caller may trace pid. It
// reads one byte at address 0 of pid with process_vm_readv, which the
// kernel answers only after the same ptrace_may_access check
// (PTRACE_MODE_ATTACH_REALCREDS) that PTRACE_SEIZE makes: EPERM when
// refused, ESRCH when pid is gone, and EFAULT (nothing is mapped at 0) when
// access is allowed. Capabilities, ownership, dumpability, Yama and LSMs
// are all in that one answer, and unlike reading a ptrace-guarded /proc
// file it involves no file permissions, so a user holding CAP_SYS_PTRACE
// without CAP_DAC_READ_SEARCH gets the right one. (A read of nothing would
// not do: the kernel returns before its check when there is nothing to
// read.)
func CheckPtraceAccess(pid int) error {
	var b [1]byte
	local := []unix.Iovec{{Base: &b[0], Len: 1}}
	remote := []unix.RemoteIovec{{Base: 0, Len: 1}}
	_, err := unix.ProcessVMReadv(pid, local, remote, 0)
	if err == nil || errors.Is(err, unix.EFAULT) {
		return nil
	}
	return fmt.Errorf("checking ptrace access to %d: %w", pid, err)
}
