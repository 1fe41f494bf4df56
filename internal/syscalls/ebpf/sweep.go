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
//
// What is kept here is bounded as the table is: up to limit keys (the
// table's size) under their own threads; past that, the keys of the
// threads that exit next are folded under syscalls.ExitedTID, each
// (syscall, result, fd, operation) once whatever the thread, which a
// thread per request over a long window needs, and which the diagnosis
// does anyway (its exited-threads row). Calls of a folded key that would
// pass limit again are counted as dropped, as the table counts its own.
type sweeper struct {
	fs     proc.FS
	pid    int
	limit  int
	stats  map[syscalls.Key]*syscalls.Stat // swept keys under their threads
	folded map[syscalls.Key]*syscalls.Stat // swept keys under ExitedTID
	names  map[int]string                  // the names of the threads kept apart
	nFold  int                             // threads folded
	drops  uint64                          // calls of keys past both limits
	tids   []int
	err    error // the first failure, after which sweeping stops
}

func newSweeper(fs proc.FS, pid, limit int) *sweeper {
	return &sweeper{fs: fs, pid: pid, limit: limit, stats: map[syscalls.Key]*syscalls.Stat{},
		folded: map[syscalls.Key]*syscalls.Stat{}, names: map[int]string{}}
}

// keep adds the calls of one key of an exited thread, whose keys are
// all kept apart (apart) or all folded.
func (s *sweeper) keep(k syscalls.Key, st *syscalls.Stat, apart bool) {
	m := s.stats
	if !apart {
		k.TID, m = syscalls.ExitedTID, s.folded
	}
	if m[k] == nil {
		if len(m) >= s.limit {
			s.drops += st.Count
			return
		}
		m[k] = &syscalls.Stat{}
	}
	m[k].Add(st)
}

// merge adds what was swept to p.
func (s *sweeper) merge(p *syscalls.Profile) {
	for _, m := range []map[syscalls.Key]*syscalls.Stat{s.stats, s.folded} {
		for k, st := range m {
			if p.Stats[k] == nil {
				p.Stats[k] = &syscalls.Stat{}
			}
			p.Stats[k].Add(st)
		}
	}
	p.Dropped += s.drops
	p.Folded = s.nFold
	if s.nFold > 0 {
		p.Threads[syscalls.ExitedTID] = syscalls.ExitedName
		p.Notes = append(p.Notes, fmt.Sprintf("the calls of %d threads that exited during the window are counted together as %q: more keys than the table holds (%d) were kept apart already", s.nFold, syscalls.ExitedName, s.limit))
	}
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
	// per-CPU value is 344 bytes per CPU. Those that went to spill too,
	// which would fill with the keys of exited threads as stats would.
	keys, err := deadKeys(objs.Stats, seen)
	if err != nil {
		s.err = fmt.Errorf("listing the keys of exited threads: %w", err)
		return
	}
	spilled, err := deadKeys(objs.Spill, seen)
	if err != nil {
		s.err = fmt.Errorf("listing the spilled keys of exited threads: %w", err)
		return
	}
	// A thread's keys are kept apart if they all fit, else all folded.
	perThread := map[uint32]int{}
	for _, k := range append(keys, spilled...) {
		perThread[k.Tid]++
	}
	apart := map[uint32]bool{}
	room := s.limit - len(s.stats)
	for t := range seen {
		apart[t] = perThread[t] <= room
		if apart[t] {
			room -= perThread[t]
			s.names[int(t)] = seen[t]
		} else {
			s.nFold++
		}
		objs.Comms.Delete(t)
	}
	var perCPU []syscallsStat
	for _, k := range keys {
		if err := objs.Stats.Lookup(&k, &perCPU); err != nil {
			continue
		}
		s.keep(statKey(k), sumStat(perCPU), apart[k.Tid])
		// Deleted while iterating: the iteration is over.
		objs.Stats.Delete(&k)
	}
	var v syscallsSpilled
	for _, k := range spilled {
		if err := objs.Spill.Lookup(&k, &v); err != nil {
			continue
		}
		s.keep(statKey(k), &syscalls.Stat{Count: v.Count, Bytes: v.RetSum}, apart[k.Tid])
		objs.Spill.Delete(&k)
	}
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
