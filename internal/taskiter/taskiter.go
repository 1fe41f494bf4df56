package taskiter

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"

	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"

	"github.com/cpuwhy/cpuwhy/internal/sys"
)

// ErrNotSupported means the iterator cannot run here: read /proc instead.
var ErrNotSupported = sys.ErrNotSupported

// Task is one thread as /proc/TID/stat and /proc/TID/syscall show it.
type Task struct {
	TGID, TID, PPID int
	Comm            string
	State           byte   // as in /proc: R S D T t X Z P I
	Flags           uint64 // PF_* of the task
	UTime, STime    uint64 // clock ticks, as /proc's
	StartTime       uint64 // clock ticks after boot, as /proc's
	// Syscall is the number of the system call a sleeping thread is in,
	// -1 when it sleeps outside one or runs.
	Syscall int
}

// recordSize is sizeof(struct task_rec) in taskiter.bpf.c.
const recordSize = 96

// maxTasks bounds one listing: the kernel's own limit on PIDs is 2^22.
const maxTasks = 1 << 22

// Iter is the loaded iterator; each Read or List runs it once.
type Iter struct {
	// walk is the thread walker (threadwalk.bpf.c, Linux 6.7), nil
	// where it cannot load or the host outgrew it; then the iter/task
	// program (taskiter.bpf.c) lists the threads.
	walk *threadWalker
	objs taskiterObjects
	link *link.Iter // nil until the iter/task program is loaded
	buf  []byte
}

// Open loads the thread walker where the kernel has open-coded task
// iterators (6.7), else loads and attaches the iter/task program.
func Open() (*Iter, error) {
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, notSupported("raising RLIMIT_MEMLOCK for BPF", threadsFeature, threadsSince, err)
	}
	it := &Iter{}
	var err error
	if it.walk, err = openThreadWalker(); err == nil {
		return it, nil
	}
	if err := it.openRecords(); err != nil {
		return nil, err
	}
	return it, nil
}

// openRecords loads and attaches the iter/task program.
func (it *Iter) openRecords() error {
	if err := loadTaskiterObjects(&it.objs, nil); err != nil {
		return notSupported("loading the BPF task iterator", threadsFeature, threadsSince, err)
	}
	l, err := link.AttachIter(link.IterOptions{Program: it.objs.DumpTask})
	if err != nil {
		it.objs.Close()
		return notSupported("attaching the BPF task iterator", threadsFeature, threadsSince, err)
	}
	it.link = l
	it.buf = make([]byte, 64<<10)
	return nil
}

// The kernel features each program needs, for the errors that say
// which is missing.
const (
	threadsFeature, threadsSince = "BPF task iterator with bpf_task_pt_regs", "5.15" // taskiter.bpf.c
	recordsFeature, recordsSince = "BPF task iterator", "5.8"                        // procs.bpf.c
	walkerFeature, walkerSince   = "BPF open-coded task iterator", "6.7"             // procwalk.bpf.c, threadwalk.bpf.c
)

func notSupported(what, feature, since string, err error) error {
	return fmt.Errorf("%s: %w", what, &sys.NotSupportedError{Feature: feature, Since: since, Err: err})
}

// Close releases the programs.
func (it *Iter) Close() error {
	if it.walk != nil {
		it.walk.close()
	}
	if it.link == nil {
		return nil
	}
	err := it.link.Close()
	if cerr := it.objs.Close(); err == nil {
		err = cerr
	}
	return err
}

// Walking reports whether Read walks the task lists in one program run
// (Linux 6.7 and later), and so gives the processes' own figures too.
func (it *Iter) Walking() bool { return it.walk != nil }

// Read fills l anew, reusing its slices, with every user thread of the
// host and, where the walker runs, every user process.
func (it *Iter) Read(l *Listing) error {
	if it.walk != nil {
		err := it.walk.read(l)
		if !errors.Is(err, errTooMany) {
			return err
		}
		if it.link == nil {
			if err := it.openRecords(); err != nil {
				return fmt.Errorf("more than %d threads or %d processes for the walker: %w", maxWalkedThreads, maxWalkedProcs, err)
			}
		}
		// A host that outgrew the walker is read with iter/task from
		// now on, rather than walked in vain before each listing.
		it.walk.close()
		it.walk = nil
	}
	l.Groups, l.Walked = nil, 0
	var err error
	l.Tasks, err = it.list(l.Tasks[:0])
	return err
}

// List returns every user thread of the host, a process's threads
// together, appended to tasks.
func (it *Iter) List(tasks []Task) ([]Task, error) {
	if it.walk != nil {
		l := Listing{Tasks: tasks[len(tasks):]}
		err := it.Read(&l)
		return append(tasks, l.Tasks...), err
	}
	return it.list(tasks)
}

// list runs the iter/task program once.
func (it *Iter) list(tasks []Task) ([]Task, error) {
	r, err := it.link.Open()
	if err != nil {
		return tasks, fmt.Errorf("running the task iterator: %w", err)
	}
	defer r.Close()
	var raw []byte
	pending := 0 // bytes of a record split across reads
	name := ""
	for {
		n, err := r.Read(it.buf[pending:])
		pending += n
		whole := pending - pending%recordSize
		raw = it.buf[:whole]
		for off := 0; off < len(raw); off += recordSize {
			if len(tasks) >= maxTasks {
				return tasks, fmt.Errorf("running the task iterator: more than %d tasks", maxTasks)
			}
			tasks = append(tasks, parse(raw[off:off+recordSize], name))
			name = tasks[len(tasks)-1].Comm
		}
		pending = copy(it.buf, it.buf[whole:pending])
		if errors.Is(err, io.EOF) || (err == nil && n == 0) {
			break
		}
		if err != nil {
			return tasks, fmt.Errorf("reading the task iterator: %w", err)
		}
	}
	if pending != 0 {
		return tasks, fmt.Errorf("reading the task iterator: %d bytes left over", pending)
	}
	return tasks, nil
}

// Parse decodes one record of the iterator (recordSize bytes).
func Parse(b []byte) Task { return parse(b, "") }

// parse is Parse, naming the thread with name, without allocating, when
// its record holds that name.
func parse(b []byte, name string) Task {
	u32 := func(off int) uint32 { return binary.NativeEndian.Uint32(b[off:]) }
	u64 := func(off int) uint64 { return binary.NativeEndian.Uint64(b[off:]) }
	utime, stime := adjust(u64(24), u64(32), u64(40), u64(48), u64(56))
	comm := b[80:96]
	for i, c := range comm {
		if c == 0 {
			comm = comm[:i]
			break
		}
	}
	t := Task{
		TGID:      int(u32(0)),
		TID:       int(u32(4)),
		PPID:      int(u32(8)),
		Flags:     uint64(u32(12)),
		State:     stateLetter(u32(16), u32(20)),
		UTime:     toTicks(utime),
		STime:     toTicks(stime),
		StartTime: toTicks(u64(64)),
		Syscall:   int(int64(u64(72))),
		Comm:      name,
	}
	if string(comm) != name { // the comparison does not allocate
		t.Comm = string(comm)
	}
	return t
}

// userHZ is the unit of /proc's times (USER_HZ).
const userHZ = 100

func toTicks(ns uint64) uint64 { return ns / (1_000_000_000 / userHZ) }

// stateLetter is the kernel's task_state_index, and /proc's letter for it.
func stateLetter(state, exitState uint32) byte {
	const (
		taskReport      = 0x7f
		taskIdle        = 0x0402 // TASK_UNINTERRUPTIBLE | TASK_NOLOAD
		taskRTLockWait  = 0x1000
		taskUninterrupt = 0x0002
	)
	s := (state | exitState) & taskReport
	if state&taskIdle == taskIdle {
		s = taskReport + 1
	}
	if state == taskRTLockWait {
		s = taskUninterrupt
	}
	const letters = "RSDTtXZPI"
	i := 0
	for s != 0 { // fls
		i++
		s >>= 1
	}
	if i >= len(letters) {
		return '?'
	}
	return letters[i]
}

// adjust is the kernel's cputime_adjust: the sampled user and system
// times scaled to the precise run time, never below what /proc last
// reported (prev), so that they do not go backwards.
func adjust(utime, stime, rtime, prevU, prevS uint64) (uint64, uint64) {
	if prevS+prevU >= rtime {
		return prevU, prevS
	}
	switch {
	case stime == 0:
		utime = rtime
	case utime == 0:
		stime = rtime
	default:
		stime = mulDiv(stime, rtime, stime+utime)
		if stime > rtime {
			stime = rtime
		}
		utime = rtime - stime
	}
	if stime < prevS {
		stime = prevS
	}
	utime = rtime - stime
	if utime < prevU {
		utime = prevU
		stime = rtime - utime
	}
	return utime, stime
}

// mulDiv is a*b/c without overflowing 64 bits for the products of
// nanosecond times (the kernel's mul_u64_u64_div_u64).
func mulDiv(a, b, c uint64) uint64 {
	if c == 0 {
		return 0
	}
	hi, lo := bits.Mul64(a, b)
	if hi >= c { // the quotient would not fit: a > c here, never in adjust
		return ^uint64(0)
	}
	q, _ := bits.Div64(hi, lo, c)
	return q
}

// Lazy is an Iter opened on the first List, for a caller that may never
// need one (a process view that the user may or may not switch to
// threads). A failure to open is kept: every List then returns it, and
// the caller reads /proc.
type Lazy struct {
	it  *Iter
	err error
}

// List opens the iterator the first time, and lists the threads.
func (l *Lazy) List(tasks []Task) ([]Task, error) {
	if err := l.open(); err != nil {
		return tasks, err
	}
	return l.it.List(tasks)
}

// Read opens the iterator the first time, and reads a listing.
func (l *Lazy) Read(ls *Listing) error {
	if err := l.open(); err != nil {
		return err
	}
	return l.it.Read(ls)
}

func (l *Lazy) open() error {
	if l.it == nil && l.err == nil {
		l.it, l.err = Open()
	}
	return l.err
}

// Close closes the iterator if it was opened.
func (l *Lazy) Close() error {
	if l.it == nil {
		return nil
	}
	return l.it.Close()
}
