package taskiter

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/cilium/ebpf"
)

// Group is one process of a walked listing: what /proc/PID/stat gives a
// process view beyond its leader's own record.
type Group struct {
	TGID int
	// UTime and STime are the whole process's, those of its exited
	// threads included, in clock ticks, scaled as /proc/PID/stat's
	// (thread_group_cputime_adjusted).
	UTime, STime uint64
	Threads      int   // live threads, as /proc's num_threads
	RSSPages     int64 // as /proc/PID/stat's rss (get_mm_rss); 0 for a zombie
	// First and Count say where its threads are in the Listing's Tasks,
	// its leader first when it is alive.
	First, Count int
}

// Listing is one listing of the host's user threads.
type Listing struct {
	// Tasks are every user thread, a process's threads together.
	Tasks []Task
	// Groups are the processes of Tasks, sorted by TGID, when the walker
	// listed them (Linux 6.7 and later); nil when the iter/task program
	// did, and the caller reads each process's own figures from /proc.
	Groups []Group
	// Walked, with Groups, is every task the walk saw, kernel threads
	// included: when it is the kernel's count of tasks (the total of
	// /proc/loadavg's fourth field), read just after, no process was
	// left out of the walk. 0 without Groups.
	Walked int
}

// The walker's arrays: MAX_THREADS and MAX_PROCS in threadwalk.bpf.c,
// and sizeof(struct group_rec).
const (
	maxWalkedThreads = 32768
	maxWalkedProcs   = 8192
	groupRecordSize  = 56
)

// threadWalker is the loaded threadwalk program and the memory it
// writes.
type threadWalker struct {
	coll *ebpf.Collection
	prog *ebpf.Program
	// threads and groups are the record arrays; vars the program's
	// globals, at offsets nthreads, nprocs and nwalked.
	threads, groups, vars     *ebpf.Memory
	nthreads, nprocs, nwalked uint32
	raw                       []byte
}

func openThreadWalker() (*threadWalker, error) {
	spec, err := loadThreadwalk()
	if err != nil {
		return nil, notSupported("loading the BPF thread walker", walkerFeature, walkerSince, err)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return nil, notSupported("loading the BPF thread walker", walkerFeature, walkerSince, err)
	}
	w := &threadWalker{coll: coll, prog: coll.Programs[threadwalkProgWalkThreads]}
	vnt, vnp, vnw := spec.Variables[threadwalkVarNthreads], spec.Variables[threadwalkVarNprocs], spec.Variables[threadwalkVarNwalked]
	mt, mg, mv := coll.Maps[threadwalkMapThreads], coll.Maps[threadwalkMapGroups], coll.Maps[vnt.SectionName]
	if w.prog == nil || mt == nil || mg == nil || mv == nil || vnp.SectionName != vnt.SectionName || vnw.SectionName != vnt.SectionName ||
		mt.MaxEntries() != maxWalkedThreads || mt.ValueSize() != recordSize ||
		mg.MaxEntries() != maxWalkedProcs || mg.ValueSize() != groupRecordSize {
		coll.Close()
		return nil, fmt.Errorf("the BPF thread walker: not the object threadwalk.go expects")
	}
	for _, m := range []struct {
		mem **ebpf.Memory
		m   *ebpf.Map
	}{{&w.threads, mt}, {&w.groups, mg}, {&w.vars, mv}} {
		if *m.mem, err = m.m.Memory(); err != nil {
			coll.Close()
			return nil, notSupported("mapping the BPF thread walker's memory", walkerFeature, walkerSince, err)
		}
	}
	w.nthreads, w.nprocs, w.nwalked = vnt.Offset, vnp.Offset, vnw.Offset
	return w, nil
}

func (w *threadWalker) close() { w.coll.Close() }

// read runs the walker once. It fails with errTooMany when the host
// holds more threads or processes than its arrays.
func (w *threadWalker) read(l *Listing) error {
	if _, err := w.prog.Run(&ebpf.RunOptions{}); err != nil {
		return fmt.Errorf("running the thread walker: %w", err)
	}
	var nb [12]byte
	for i, off := range []uint32{w.nthreads, w.nprocs, w.nwalked} {
		if _, err := w.vars.ReadAt(nb[4*i:4*i+4], int64(off)); err != nil {
			return fmt.Errorf("reading the thread walker's counts: %w", err)
		}
	}
	nt, np := int(binary.NativeEndian.Uint32(nb[:4])), int(binary.NativeEndian.Uint32(nb[4:]))
	l.Walked = int(binary.NativeEndian.Uint32(nb[8:]))
	if nt > maxWalkedThreads || np > maxWalkedProcs {
		return errTooMany
	}
	w.raw = slices.Grow(w.raw[:0], nt*recordSize+np*groupRecordSize)[:nt*recordSize+np*groupRecordSize]
	threads, groups := w.raw[:nt*recordSize], w.raw[nt*recordSize:]
	if _, err := w.threads.ReadAt(threads, 0); err != nil {
		return fmt.Errorf("reading the thread walker's records: %w", err)
	}
	if _, err := w.groups.ReadAt(groups, 0); err != nil {
		return fmt.Errorf("reading the thread walker's records: %w", err)
	}
	l.Tasks = slices.Grow(l.Tasks[:0], nt)
	l.Groups = slices.Grow(l.Groups[:0], np)
	g, name := -1, ""
	for off := 0; off < len(threads); off += recordSize {
		// A thread is mostly named as the one before it, its sibling:
		// that name's string is reused rather than made again.
		t := parse(threads[off:off+recordSize], name)
		name = t.Comm
		if g < 0 || l.Groups[g].TGID != t.TGID {
			if g+1 >= np {
				// A thread after the last process record: the walk
				// is inconsistent, which the kernel never makes.
				return fmt.Errorf("reading the thread walker's records: thread %d of process %d has no process record", t.TID, t.TGID)
			}
			g++
			l.Groups = append(l.Groups, parseGroup(groups[g*groupRecordSize:(g+1)*groupRecordSize]))
			l.Groups[g].First = len(l.Tasks)
		}
		l.Tasks = append(l.Tasks, t)
		l.Groups[g].Count++
	}
	if g+1 != np {
		return fmt.Errorf("reading the thread walker's records: %d processes, %d with threads", np, g+1)
	}
	// The walk goes through processes in the order they were made: by
	// TGID here, as /proc lists them.
	slices.SortFunc(l.Groups, func(a, b Group) int { return a.TGID - b.TGID })
	return nil
}

// parseGroup decodes struct group_rec.
func parseGroup(b []byte) Group {
	u64 := func(off int) uint64 { return binary.NativeEndian.Uint64(b[off:]) }
	utime, stime := adjust(u64(8), u64(16), u64(24), u64(32), u64(40))
	return Group{
		TGID:     int(binary.NativeEndian.Uint32(b[0:])),
		Threads:  int(binary.NativeEndian.Uint32(b[4:])),
		UTime:    toTicks(utime),
		STime:    toTicks(stime),
		RSSPages: int64(u64(48)),
	}
}
