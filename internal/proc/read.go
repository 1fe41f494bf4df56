package proc

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
)

// ErrTooLarge matches a file larger than any genuine one would be: a
// file of a target or of a container engine is hostile input, and a
// truncated one would parse into something misleading.
var ErrTooLarge = errors.New("too large")

// ReadCapped reads the whole of a file below the root (ReadCapped(max,
// "1", "cgroup") is /proc/1/cgroup), failing with ErrTooLarge when it
// holds more than max bytes rather than returning a prefix.
func (f FS) ReadCapped(max int64, elem ...string) ([]byte, error) {
	return ReadFileCapped(f.Path(elem...), max)
}

// ReadFileCapped is ReadCapped for any file, such as a container engine's
// state, which whoever creates containers can write.
func ReadFileCapped(name string, max int64) ([]byte, error) {
	file, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	data, err := io.ReadAll(io.LimitReader(file, max+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("reading %s: over %d bytes: %w", name, max, ErrTooLarge)
	}
	return data, nil
}

// PIDs lists the processes below the root, in increasing order.
func (f FS) PIDs() ([]int, error) {
	entries, err := os.ReadDir(f.root())
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	sort.Ints(pids)
	return pids, nil
}
