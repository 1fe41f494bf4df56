package ebpf

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/syscalls"
)

// sweeper keeps the kernel's table of (thread, syscall, result, fd) keys
// for live threads. A process that starts a thread per request (Python's
// http.server) leaves a few dozen keys per thread behind, and the table,
// sized for the threads of a process at one time, fills within a second or
// two: every call after that went uncounted (402,862 in one 3 s window).
// So during the window the keys of each thread that has exited are read,
// deleted from the table and kept here, with the thread's name, and
// collect merges them back: the profile is the same, the table holds only
// what live threads can still add to. It runs at every poll of the target
// (pollInterval): when nothing exited it costs a read of comms, a few
// entries, and a listing of /proc/PID/task.
//
// A thread is known to have exited when the kernel side has its name
// (comms, written when its first key is) and /proc/PID/task, listed after
// comms was read, no longer has it: a thread that had made a call before
// the listing and is not in it has gone, and makes no more calls. A TID
// reused by a new thread before a sweep merges the two, as the table would
// have.
type sweeper struct {
	fs    proc.FS
	pid   int
	stats map[syscalls.Key]*syscalls.Stat // swept keys
	names map[int]string                  // the names of swept threads
	tids  []int
	err   error // the first failure, after which sweeping stops
}

func newSweeper(fs proc.FS, pid int) *sweeper {
	return &sweeper{fs: fs, pid: pid, stats: map[syscalls.Key]*syscalls.Stat{}, names: map[int]string{}}
}

// sweep moves the keys of the threads that have exited out of the table.
func (s *sweeper) sweep(objs *syscallsObjects) {
	if s.err != nil {
		return
	}
	var tid uint32
	var c syscallsComm
	seen := map[uint32]string{}
	it := objs.Comms.Iterate()
	for it.Next(&tid, &c) {
		seen[tid] = commString(c)
	}
	if err := it.Err(); err != nil {
		s.err = fmt.Errorf("listing the threads seen: %w", err)
		return
	}
	var err error
	s.tids, err = s.fs.Tasks(s.pid, s.tids[:0])
	if err != nil {
		return // the process is gone: the trace ends, and collect reads the table
	}
	for _, t := range s.tids {
		delete(seen, uint32(t))
	}
	if len(seen) == 0 {
		return
	}
	// Keys only, then the values of the dead threads' keys alone: a
	// per-CPU value is 344 bytes per CPU.
	keys, err := deadKeys(objs.Stats, seen)
	if err != nil {
		s.err = fmt.Errorf("listing the keys of exited threads: %w", err)
		return
	}
	var perCPU []syscallsStat
	for _, k := range keys {
		if err := objs.Stats.Lookup(&k, &perCPU); err != nil {
			continue
		}
		s.add(k, sumStat(perCPU))
		// Deleted while iterating: the iteration is over.
		objs.Stats.Delete(&k)
	}
	// And those that went to spill, which would fill with the keys of
	// exited threads as stats would.
	if keys, err = deadKeys(objs.Spill, seen); err != nil {
		s.err = fmt.Errorf("listing the spilled keys of exited threads: %w", err)
		return
	}
	var v syscallsSpilled
	for _, k := range keys {
		if err := objs.Spill.Lookup(&k, &v); err != nil {
			continue
		}
		s.add(k, &syscalls.Stat{Count: v.Count, Bytes: v.RetSum})
		objs.Spill.Delete(&k)
	}
	for t, name := range seen {
		s.names[int(t)] = name
		objs.Comms.Delete(t)
	}
}

// add keeps what a swept key counted.
func (s *sweeper) add(k syscallsKey, st *syscalls.Stat) {
	sk := statKey(k)
	if s.stats[sk] == nil {
		s.stats[sk] = &syscalls.Stat{}
	}
	s.stats[sk].Add(st)
}

// deadKeys lists the keys of m whose thread is in dead.
func deadKeys(m *ebpf.Map, dead map[uint32]string) ([]syscallsKey, error) {
	var keys []syscallsKey
	var key, next syscallsKey
	var cur any // nil: start from the first key
	for {
		if err := m.NextKey(cur, &next); err != nil {
			if errors.Is(err, ebpf.ErrKeyNotExist) {
				return keys, nil
			}
			return keys, err
		}
		if _, ok := dead[next.Tid]; ok {
			keys = append(keys, next)
		}
		key = next
		cur = &key
	}
}

// statKey is the key of the profile of a key of the table.
func statKey(k syscallsKey) syscalls.Key {
	sk := syscalls.Key{TID: int(k.Tid), Nr: int(k.Nr), Errno: int(k.Err), FD: int(k.Fd)}
	if k.Err == retZero {
		sk.Errno, sk.Zero = 0, true
	}
	if k.Op > 0 {
		sk.Op = syscalls.FutexOp(int(k.Op) - 1)
	}
	return sk
}

// sumStat sums a key's per-CPU values.
func sumStat(perCPU []syscallsStat) *syscalls.Stat {
	s := &syscalls.Stat{}
	for i := range perCPU {
		v := &perCPU[i]
		s.Add(&syscalls.Stat{Count: v.Count, Timed: v.Timed, TotalNs: v.TotalNs, Hist: v.Hist, Bytes: v.RetSum})
	}
	return s
}

func commString(c syscallsComm) string {
	b := make([]byte, 0, len(c.Name))
	for _, ch := range c.Name {
		if ch == 0 {
			break
		}
		b = append(b, byte(ch))
	}
	return string(b)
}
