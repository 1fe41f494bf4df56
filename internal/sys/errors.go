package sys

import (
	"errors"
	"fmt"
)

// ErrNotSupported matches every error of a kernel that lacks what one
// capability needs: a system call, an event, a BPF feature. Callers fall
// back, or degrade that capability and say why; nothing else stops.
var ErrNotSupported = errors.New("not supported by this kernel")

// NotSupportedError names the kernel feature that is missing and the
// first Linux version that has it, so that the one line a user reads
// says what to upgrade to. It matches ErrNotSupported and wraps the
// kernel's own error.
type NotSupportedError struct {
	Feature string // "openat2", "BTF-typed tracepoints"
	Since   string // "5.6"
	Err     error  // what the kernel said, when it said something
}

func (e *NotSupportedError) Error() string {
	msg := fmt.Sprintf("%s is not supported by this kernel (Linux %s or later has it)", e.Feature, e.Since)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Is makes errors.Is(err, ErrNotSupported) true.
func (e *NotSupportedError) Is(target error) bool { return target == ErrNotSupported }

func (e *NotSupportedError) Unwrap() error { return e.Err }
