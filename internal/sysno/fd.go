package sysno

// fdFirst names the system calls whose first argument is a file
// descriptor the call acts on. It is kept by hand, unlike the number
// tables: which argument means what is not in the UAPI headers. A syscall
// missing here is still counted, only not split by fd.
var fdFirst = map[string]bool{
	"read": true, "write": true, "pread64": true, "pwrite64": true,
	"readv": true, "writev": true, "preadv": true, "pwritev": true, "preadv2": true, "pwritev2": true,
	"close": true, "fstat": true, "lseek": true, "ioctl": true, "fcntl": true,
	"fsync": true, "fdatasync": true, "ftruncate": true, "fallocate": true, "flock": true,
	"getdents64": true, "getdents": true, "fchmod": true, "fchown": true, "fstatfs": true,
	"sync_file_range": true, "readahead": true, "fadvise64": true,
	"recvfrom": true, "sendto": true, "recvmsg": true, "sendmsg": true, "recvmmsg": true, "sendmmsg": true,
	"accept": true, "accept4": true, "connect": true, "bind": true, "listen": true, "shutdown": true,
	"getsockopt": true, "setsockopt": true, "getsockname": true, "getpeername": true,
	"epoll_wait": true, "epoll_pwait": true, "epoll_pwait2": true, "epoll_ctl": true,
	"timerfd_settime": true, "timerfd_gettime": true, "splice": true, "tee": true,
	"inotify_add_watch": true, "inotify_rm_watch": true, "fanotify_mark": true,
	"copy_file_range": true, "io_uring_enter": true, "signalfd4": true,
}

// TakesFD reports whether syscall nr on arch takes the file descriptor it
// acts on as its first argument.
func TakesFD(arch string, nr int) bool { return fdFirst[Name(arch, nr)] }

// Number returns the number of the named syscall on arch, or -1.
func Number(arch, name string) int {
	for nr, n := range table(arch) {
		if n == name {
			return nr
		}
	}
	return -1
}

// Max is one more than the highest syscall number known on arch: the size
// of a table indexed by number.
func Max(arch string) int {
	m := 0
	for nr := range table(arch) {
		m = max(m, nr+1)
	}
	return m
}
