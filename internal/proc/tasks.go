package proc

import (
	"fmt"

	"github.com/cpuwhy/cpuwhy/internal/sys"
)

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
	dst, err = dir.Numbers(dst, make([]byte, 16<<10))
	if err != nil {
		return dst, fmt.Errorf("listing the threads of %d: %w", pid, gone(err))
	}
	return dst, nil
}
