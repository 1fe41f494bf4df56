package sys

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// RootDir is a directory of a target's file tree, opened through the
// target's root with RESOLVE_IN_ROOT as OpenInRoot opens files: what is
// done in it stays inside the target's tree, whatever symbolic links the
// target planted. It is what a runtime's attach mechanism needs (a
// trigger file to create, a socket to connect to); its names are single
// path components.
type RootDir struct {
	fd   int
	path string // for messages: the directory as the target names it
}

// OpenRootDir opens directory path (as the target names it) under root.
func OpenRootDir(root, path string) (*RootDir, error) {
	rootFD, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening root %s: %w", root, err)
	}
	defer unix.Close(rootFD)
	fd, err := openat2InRoot(rootFD, root, path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
		return nil, err
	}
	return &RootDir{fd: fd, path: path}, nil
}

// Close closes the directory.
func (d *RootDir) Close() error { return unix.Close(d.fd) }

// Path is the directory as the target names it.
func (d *RootDir) Path() string { return d.path }

// Owner returns the owner of the directory entry name, not following a
// symbolic link, and whether it is a socket.
func (d *RootDir) Owner(name string) (uid int, socket bool, err error) {
	var st unix.Stat_t
	if err := unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return 0, false, fmt.Errorf("stat of %s/%s: %w", d.path, name, err)
	}
	return int(st.Uid), st.Mode&unix.S_IFMT == unix.S_IFSOCK, nil
}

// CreateEmpty creates the empty file name, which must not exist, owned by
// uid and gid (as the host sees them), readable by its owner only.
func (d *RootDir) CreateEmpty(name string, uid, gid int) error {
	fd, err := unix.Openat(d.fd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("creating %s/%s: %w", d.path, name, err)
	}
	defer unix.Close(fd)
	if err := unix.Fchown(fd, uid, gid); err != nil {
		unix.Unlinkat(d.fd, name, 0)
		return fmt.Errorf("giving %s/%s to uid %d: %w", d.path, name, uid, err)
	}
	return nil
}

// Remove removes the file name.
func (d *RootDir) Remove(name string) error {
	if err := unix.Unlinkat(d.fd, name, 0); err != nil {
		return fmt.Errorf("removing %s/%s: %w", d.path, name, err)
	}
	return nil
}

// DialUnix connects to the Unix socket name in the directory, owned by
// uid (or by root), with timeout. The socket is reached through the
// directory's descriptor (/proc/self/fd/N/name), so only its last
// component is looked up, and checked first not to be a symbolic link.
func (d *RootDir) DialUnix(name string, uid int, timeout time.Duration) (net.Conn, error) {
	owner, socket, err := d.Owner(name)
	if err != nil {
		return nil, err
	}
	if !socket {
		return nil, fmt.Errorf("%s/%s is not a socket", d.path, name)
	}
	if owner != uid && owner != 0 {
		return nil, fmt.Errorf("%s/%s belongs to uid %d, not the process's %d", d.path, name, owner, uid)
	}
	conn, err := net.DialTimeout("unix", "/proc/self/fd/"+strconv.Itoa(d.fd)+"/"+name, timeout)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s/%s: %w", d.path, name, err)
	}
	return conn, nil
}

// Signal sends signal sig to process pid through a pidfd opened first,
// after check has passed on it: a PID reused between the check and the
// signal cannot get it (the pidfd stays bound to the process it named).
func Signal(pid int, sig unix.Signal, check func() error) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("opening a pidfd for %d: %w", pid, err)
	}
	defer unix.Close(fd)
	if err := check(); err != nil {
		return err
	}
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil {
		return fmt.Errorf("sending %v to %d: %w", sig, pid, err)
	}
	return nil
}
