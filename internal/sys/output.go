package sys

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// ErrNoReader is returned by OpenForWriting for a FIFO that no process
// has open for reading.
var ErrNoReader = errors.New("no process reads it")

// OpenForWriting opens what is at path for writing in place, as a shell's
// `>` does for a device or a FIFO, but never creates, truncates or
// replaces it, and never waits: a FIFO without a reader fails at once
// with ErrNoReader (the kernel's ENXIO) instead of blocking until one
// comes, a terminal does not become cpuwhy's controlling terminal, and a
// serial line does not wait for its carrier. The file is returned in
// blocking mode, so that writes wait for a slow reader as a shell's would.
func OpenForWriting(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENXIO) {
			if st, serr := os.Stat(path); serr == nil && st.Mode()&os.ModeNamedPipe != 0 {
				return nil, &os.PathError{Op: "open", Path: path, Err: ErrNoReader}
			}
		}
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "fcntl", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}
