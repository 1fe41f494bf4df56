package sys

import (
	"errors"
	"fmt"
	"testing"

	"golang.org/x/sys/unix"
)

func TestNotSupportedError(t *testing.T) {
	err := fmt.Errorf("opening x: %w", &NotSupportedError{Feature: "openat2", Since: "5.6", Err: unix.ENOSYS})
	if !errors.Is(err, ErrNotSupported) || !errors.Is(err, unix.ENOSYS) {
		t.Errorf("%v: matches ErrNotSupported %v, ENOSYS %v; want both", err, errors.Is(err, ErrNotSupported), errors.Is(err, unix.ENOSYS))
	}
	want := "opening x: openat2 is not supported by this kernel (Linux 5.6 or later has it): function not implemented"
	if err.Error() != want {
		t.Errorf("%q, want %q", err, want)
	}
	var nse *NotSupportedError
	if !errors.As(err, &nse) || nse.Feature != "openat2" {
		t.Errorf("errors.As found %+v", nse)
	}
}
