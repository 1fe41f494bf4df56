package sys

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The functions here exist for the hot path of a /proc scan, which reads one
// stat file per thread on every refresh: os.ReadFile allocates a buffer per
// file, os.Open registers each file with the runtime poller (a failing
// epoll_ctl per file), and walking "/proc/PID/task/TID/stat" from the root
// repeats the lookup of every component. Measured at 3,000 threads, those
// costs were about half of a refresh.

// ReadProcFile reads a proc file into buf with a single read and returns the
// bytes read. A /proc seq file hands out its whole text in one read when the
// buffer can hold it; longer text is truncated to len(buf).
func ReadProcFile(path string, buf []byte) (int, error) {
	return ReadProcFileAt(unix.AT_FDCWD, path, buf)
}

// ReadProcFileAt is ReadProcFile with path relative to the directory dirfd.
func ReadProcFileAt(dirfd int, path string, buf []byte) (int, error) {
	fd, err := unix.Openat(dirfd, path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return 0, fmt.Errorf("opening %s: %w", path, err)
	}
	defer unix.Close(fd)
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("reading %s: %w", path, err)
		}
		return n, nil
	}
}

// Dir is an open directory, for reading the files below it without walking
// the path from the root each time.
type Dir struct {
	fd   int
	path string
}

// OpenDir opens the directory at path.
func OpenDir(path string) (*Dir, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	return &Dir{fd: fd, path: path}, nil
}

// Close closes the directory.
func (d *Dir) Close() error { return unix.Close(d.fd) }

// ReadFile is ReadProcFile for a path relative to the directory.
func (d *Dir) ReadFile(name string, buf []byte) (int, error) {
	n, err := ReadProcFileAt(d.fd, name, buf)
	if err != nil {
		return 0, fmt.Errorf("in %s: %w", d.path, err)
	}
	return n, nil
}

// Numbers appends to dst the names in the directory that are decimal
// numbers (the PIDs of /proc, the TIDs of /proc/PID/task), using scratch for
// the raw directory entries. It makes raw syscalls (lseek and getdents64
// on a /proc directory, which never wait for I/O): a sampler that lists
// its target's threads every second while it otherwise sleeps must not
// wake the runtime's sysmon each time (a sixth of `cpuwhy record`'s CPU
// while sampling at 99 Hz went to sysmon polling after the rescans'
// syscalls).
func (d *Dir) Numbers(dst []int, scratch []byte) ([]int, error) {
	if len(scratch) == 0 {
		return dst, fmt.Errorf("listing %s: no buffer", d.path)
	}
	if _, _, errno := unix.RawSyscall(unix.SYS_LSEEK, uintptr(d.fd), 0, 0); errno != 0 {
		return dst, fmt.Errorf("rewinding %s: %w", d.path, errno)
	}
	for {
		n, _, errno := unix.RawSyscall(unix.SYS_GETDENTS64, uintptr(d.fd), uintptr(unsafe.Pointer(&scratch[0])), uintptr(len(scratch)))
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return dst, fmt.Errorf("listing %s: %w", d.path, errno)
		}
		if n == 0 {
			return dst, nil
		}
		dst = appendDirentNumbers(dst, scratch[:n])
	}
}

// appendDirentNumbers parses linux_dirent64 records (8-byte inode, 8-byte
// offset, 2-byte record length, 1-byte type, NUL-terminated name) and keeps
// the names that are decimal numbers. It never reads past buf, whatever the
// record lengths say.
func appendDirentNumbers(dst []int, buf []byte) []int {
	const nameOff = 19
	for len(buf) >= nameOff {
		reclen := int(buf[16]) | int(buf[17])<<8
		if reclen < nameOff || reclen > len(buf) {
			return dst
		}
		name := buf[nameOff:reclen]
		for i, c := range name {
			if c == 0 {
				name = name[:i]
				break
			}
		}
		if v, ok := decimal(name); ok {
			dst = append(dst, v)
		}
		buf = buf[reclen:]
	}
	return dst
}

// decimal parses a positive decimal PID without allocating.
func decimal(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 10 || b[0] == '0' {
		return 0, false
	}
	v := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

// OpenDirAt opens the directory name below parent.
func OpenDirAt(parent *Dir, name string) (*Dir, error) {
	fd, err := unix.Openat(parent.fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s/%s: %w", parent.path, name, err)
	}
	return &Dir{fd: fd, path: parent.path + "/" + name}, nil
}
