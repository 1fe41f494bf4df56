package proc

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/sys"
)

// Sched is a thread's /proc/PID/task/TID/schedstat: nanoseconds, unlike
// stat's ticks, and with the time the thread waited for a CPU while
// runnable, which stat lacks. On-CPU plus waiting is what a thread wanted:
// a loop sharing one core with another gets half of it but wants all of it.
type Sched struct {
	OnCPU   time.Duration // run on a CPU
	Waiting time.Duration // runnable, waiting on a run queue
	Slices  uint64        // times it was scheduled in
}

// Schedstat reads the schedstat of thread tid of process pid. The error
// matches ErrGone when the thread is gone.
func (f FS) Schedstat(pid, tid int) (Sched, error) {
	var buf [128]byte
	n, err := sys.ReadProcFile(f.TaskPath(pid, tid, "schedstat"), buf[:])
	if err != nil {
		return Sched{}, fmt.Errorf("reading schedstat of thread %d: %w", tid, gone(err))
	}
	return ParseSchedstat(buf[:n])
}

// ThreadSchedstats reads the schedstat of every live thread of process
// pid, by TID, in one pass over /proc/PID/task: the ground truth of what
// each thread ran, for measuring a window. Threads that end while it reads
// are left out; the error matches ErrGone when the process is gone.
func (f FS) ThreadSchedstats(pid int) (map[int]Sched, error) {
	dir, err := sys.OpenDir(f.PIDPath(pid, "task"))
	if err != nil {
		return nil, fmt.Errorf("listing the threads of %d: %w", pid, gone(err))
	}
	defer dir.Close()
	tids, err := dir.Numbers(nil, make([]byte, 16<<10))
	if err != nil {
		return nil, fmt.Errorf("listing the threads of %d: %w", pid, gone(err))
	}
	out := make(map[int]Sched, len(tids))
	var buf [128]byte
	for _, tid := range tids {
		n, err := dir.ReadFile(strconv.Itoa(tid)+"/schedstat", buf[:])
		if errors.Is(gone(err), ErrGone) {
			continue // ended since the listing
		}
		if err != nil {
			return nil, fmt.Errorf("reading schedstat of thread %d of %d: %w", tid, pid, err)
		}
		st, err := ParseSchedstat(buf[:n])
		if err != nil {
			return nil, fmt.Errorf("thread %d of %d: %w", tid, pid, err)
		}
		out[tid] = st
	}
	return out, nil
}

// ParseSchedstat parses the three numbers of a schedstat line.
func ParseSchedstat(b []byte) (Sched, error) {
	f := bytes.Fields(b)
	if len(f) != 3 {
		return Sched{}, fmt.Errorf("malformed schedstat %q: want 3 fields", truncate(b))
	}
	var v [3]uint64
	for i := range v {
		n, err := strconv.ParseUint(string(f[i]), 10, 64)
		if err != nil || i < 2 && n > 1<<62 {
			return Sched{}, fmt.Errorf("malformed schedstat %q: field %d", truncate(b), i+1)
		}
		v[i] = n
	}
	return Sched{OnCPU: time.Duration(v[0]), Waiting: time.Duration(v[1]), Slices: v[2]}, nil
}
