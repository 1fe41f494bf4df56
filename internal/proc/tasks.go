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
	dir, err := sys.OpenDir(f.PIDPath(pid, "task"))
	if err != nil {
		return dst, fmt.Errorf("listing the threads of %d: %w", pid, gone(err))
	}
	defer dir.Close()
	buf := direntBufs.Get().(*[]byte)
	defer direntBufs.Put(buf)
	dst, err = dir.Numbers(dst, *buf)
	if err != nil {
		return dst, fmt.Errorf("listing the threads of %d: %w", pid, gone(err))
	}
	return dst, nil
}
