//go:build !amd64 && !arm64

package sys

import (
	"fmt"
	"runtime"
)

func getSyscallRegs(tid int) (SyscallRegs, error) {
	return SyscallRegs{}, fmt.Errorf("syscall registers of %s are not known", runtime.GOARCH)
}
