package sys

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// OpenInRoot opens path for reading as if root were "/": every symbolic
// link met on the way, absolute or relative, and every "..", resolves
// inside root (RESOLVE_IN_ROOT), and /proc's magic links, which could
// point anywhere, are refused (RESOLVE_NO_MAGICLINKS). root is typically a
// target's /proc/PID/root, so a container's own absolute symlinks
// (/lib/x.so -> /usr/lib/x.so) work as they do inside it, and a hostile
// one can never lead to a host file.
//
// On kernels without openat2 the error wraps ErrNotSupported: there is no
// safe fallback (a userspace walk races with the container changing its
// tree), so the caller should use another handle, such as map_files.
func OpenInRoot(root, path string) (*os.File, error) {
	rootFD, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening root %s: %w", root, err)
	}
	defer unix.Close(rootFD)
	return openInRootFD(rootFD, root, path)
}

func openInRootFD(rootFD int, root, path string) (*os.File, error) {
	fd, err := openat2InRoot(rootFD, root, path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY|unix.O_NONBLOCK)
	if err != nil {
		return nil, err
	}
	// O_NONBLOCK only keeps a FIFO planted in the root from blocking the
	// open; regular files ignore it. Refuse anything else: reads from a
	// device or FIFO could block or never end.
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("stat of %s in %s: %w", path, root, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, fmt.Errorf("opening %s in %s: %w", path, root, ErrNotRegular)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// openat2InRoot opens path below the directory rootFD (root, for errors)
// with flags, every symbolic link resolved as if rootFD were /, and no
// magic link (/proc/PID/fd/N) followed: a container's links cannot lead
// out of it.
func openat2InRoot(rootFD int, root, path string, flags uint64) (int, error) {
	how := &unix.OpenHow{Flags: flags, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
	for {
		fd, err := unix.Openat2(rootFD, path, how)
		switch {
		case err == unix.EINTR, err == unix.EAGAIN:
			// EAGAIN: a rename raced with the lookup; the kernel asks
			// for a retry.
			continue
		case errors.Is(err, unix.ENOSYS):
			return -1, fmt.Errorf("opening %s in %s: %w", path, root, &NotSupportedError{Feature: "openat2", Since: "5.6", Err: err})
		case err != nil:
			return -1, fmt.Errorf("opening %s in %s: %w", path, root, err)
		}
		return fd, nil
	}
}

// ErrNotRegular is returned by OpenInRoot for a path that names something
// other than a regular file.
var ErrNotRegular = errors.New("not a regular file")
