package proc

import (
	"fmt"
	"sync"

	"github.com/cpuwhy/cpuwhy/internal/sys"
)

// direntBufs are the buffers Tasks reads directory entries into: its
// callers list threads several times a second for the whole of a window.
var direntBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// Tasks lists the TIDs of the live threads of process pid, from the
// names in /proc/PID/task alone: no file of a thread is read, so it is
// cheap enough to call several times a second. The error matches ErrGone
// when the process is gone.
func (f FS) Tasks(pid int, dst []int) ([]int, error) {
	buf := direntBufs.Get().(*[]byte)
	defer direntBufs.Put(buf)
	l, err := f.openTasks(pid, *buf)
	if err != nil {
		return dst, err
	}
	defer l.Close()
	return l.List(dst)
}

// TaskList is /proc/PID/task held open, for a caller that lists one
// process's threads again and again (a sampler following its target):
// each List is two raw syscalls on the open directory, with no path
// walked, no file opened and nothing that wakes the Go runtime's sysmon.
type TaskList struct {
	pid int
	dir *sys.Dir
	buf []byte
}

// OpenTasks opens the thread list of process pid. The error matches
// ErrGone when the process is gone.
func (f FS) OpenTasks(pid int) (*TaskList, error) {
	return f.openTasks(pid, make([]byte, 32<<10))
}

// openTasks opens the thread list of process pid, to be read into buf.
func (f FS) openTasks(pid int, buf []byte) (*TaskList, error) {
	dir, err := sys.OpenDir(f.PIDPath(pid, "task"))
	if err != nil {
		return nil, fmt.Errorf("listing the threads of %d: %w", pid, gone(err))
	}
	return &TaskList{pid: pid, dir: dir, buf: buf}, nil
}

// List appends the TIDs of the process's live threads to dst, as Tasks
// does. The error matches ErrGone once the process is gone (the kernel
// lists nothing for a reaped process: ENOENT).
func (l *TaskList) List(dst []int) ([]int, error) {
	dst, err := l.dir.Numbers(dst, l.buf)
	if err != nil {
		return dst, fmt.Errorf("listing the threads of %d: %w", l.pid, gone(err))
	}
	return dst, nil
}

// Close closes the directory.
func (l *TaskList) Close() error { return l.dir.Close() }
