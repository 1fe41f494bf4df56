//go:build !amd64 && !arm64

package sys

import (
	"fmt"
	"runtime"
)

func getSyscallRegs(tid int) (SyscallRegs, error) {
	return SyscallRegs{}, fmt.Errorf("syscall registers of %s are not known", runtime.GOARCH)
}

func getUserRegs(tid int) (UserRegs, error) {
	return UserRegs{}, fmt.Errorf("registers of %s are not known", runtime.GOARCH)
}
