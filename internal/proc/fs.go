package proc

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// DefaultRoot is where the host's proc filesystem is mounted.
const DefaultRoot = "/proc"

// ErrGone matches errors about a process or thread that no longer exists
// (it exited, or never did).
var ErrGone = errors.New("no such process")

// FS is a proc filesystem rooted at Root. The zero value reads /proc.
type FS struct {
	Root string
}

func (f FS) root() string {
	if f.Root == "" {
		return DefaultRoot
	}
	return f.Root
}

// Path joins elements below the root: Path("1", "status") is /proc/1/status.
func (f FS) Path(elem ...string) string {
	return filepath.Join(append([]string{f.root()}, elem...)...)
}

// PIDPath is Path for a file of one process.
func (f FS) PIDPath(pid int, elem ...string) string {
	return f.Path(append([]string{strconv.Itoa(pid)}, elem...)...)
}

// TaskPath is Path for a file of one thread. `cpuwhy top` calls it twice
// per sleeping thread it has not seen before, so it builds the common case
// (a clean root and plain file names) in one allocation instead of going
// through Path's slices and Clean, which cost 5% of a cold refresh at ten
// thousand threads.
func (f FS) TaskPath(pid, tid int, elem ...string) string {
	root := f.root()
	if root != filepath.Clean(root) || !plainNames(elem) {
		return f.Path(append([]string{strconv.Itoa(pid), "task", strconv.Itoa(tid)}, elem...)...)
	}
	var b strings.Builder
	b.Grow(len(root) + 64)
	b.WriteString(root)
	if root != "/" {
		b.WriteByte('/')
	}
	var num [20]byte
	b.Write(strconv.AppendInt(num[:0], int64(pid), 10))
	b.WriteString("/task/")
	b.Write(strconv.AppendInt(num[:0], int64(tid), 10))
	for _, e := range elem {
		b.WriteByte('/')
		b.WriteString(e)
	}
	return b.String()
}

// plainNames reports whether every element is one path component that
// filepath.Join would keep as it is.
func plainNames(elem []string) bool {
	for _, e := range elem {
		if e == "" || e == "." || e == ".." || strings.IndexByte(e, '/') >= 0 {
			return false
		}
	}
	return true
}

// gone maps the errors the kernel gives for a vanished task onto ErrGone:
// ENOENT when the directory is already gone, ESRCH when it is reaped
// between open and read.
func gone(err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("%w: %w", ErrGone, err)
	}
	return err
}
