package proc

import (
	"bytes"
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
