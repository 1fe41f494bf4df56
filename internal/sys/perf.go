package sys

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// PerfEventAttr is the kernel's perf_event_attr, as x/sys/unix spells it.
type PerfEventAttr = unix.PerfEventAttr

// Perf record types and sample bits cpuwhy uses, re-exported so that
// callers need not import x/sys/unix.
const (
	PerfRecordLost       = unix.PERF_RECORD_LOST
	PerfRecordThrottle   = unix.PERF_RECORD_THROTTLE
	PerfRecordUnthrottle = unix.PERF_RECORD_UNTHROTTLE
	PerfRecordSample     = unix.PERF_RECORD_SAMPLE
	PerfRecordComm       = unix.PERF_RECORD_COMM
	// PerfRecordMiscCommExec marks a PERF_RECORD_COMM made by exec, not
	// by a rename (prctl PR_SET_NAME).
	PerfRecordMiscCommExec = unix.PERF_RECORD_MISC_COMM_EXEC

	PerfTypeSoftware    = unix.PERF_TYPE_SOFTWARE
	PerfCountSWCPUClock = unix.PERF_COUNT_SW_CPU_CLOCK

	PerfSampleIP        = unix.PERF_SAMPLE_IP
	PerfSampleTID       = unix.PERF_SAMPLE_TID
	PerfSampleTime      = unix.PERF_SAMPLE_TIME
	PerfSamplePeriod    = unix.PERF_SAMPLE_PERIOD
	PerfSampleCallchain = unix.PERF_SAMPLE_CALLCHAIN
	PerfSampleRegsUser  = unix.PERF_SAMPLE_REGS_USER
	PerfSampleStackUser = unix.PERF_SAMPLE_STACK_USER

	PerfBitDisabled               = unix.PerfBitDisabled
	PerfBitFreq                   = unix.PerfBitFreq
	PerfBitExcludeKernel          = unix.PerfBitExcludeKernel
	PerfBitExcludeHv              = unix.PerfBitExcludeHv
	PerfBitExcludeCallchainUser   = unix.PerfBitExcludeCallchainUser
	PerfBitExcludeCallchainKernel = unix.PerfBitExcludeCallchainKernel
	PerfBitComm                   = unix.PerfBitComm
	PerfBitCommExec               = unix.PerfBitCommExec
	PerfBitSampleIDAll            = unix.PerfBitSampleIDAll
	PerfBitUseClockID             = unix.PerfBitUseClockID
	// PerfBitWatermark makes Wakeup a number of bytes: the kernel wakes
	// a poller of the ring each time that much more has been written.
	PerfBitWatermark = unix.PerfBitWatermark
	// PerfBitTask has the kernel write a fork record (and an exit
	// record) into the ring when a watched thread starts another.
	PerfBitTask = unix.PerfBitTask

	// ClockMonotonic is the clock sample times are taken on when an
	// event sets PerfBitUseClockID with it (Monotonic reads it).
	ClockMonotonic = unix.CLOCK_MONOTONIC
)

// ErrPerfRing wraps a failure to map an event's ring buffer, which comes
// as EPERM when the user's locked-memory allowance (perf_event_mlock_kb
// per CPU, then RLIMIT_MEMLOCK) is spent: unlike an EPERM from
// perf_event_open itself, fewer or smaller rings would still work.
var ErrPerfRing = errors.New("mapping perf ring")

// PerfEvent is one open perf event with its ring buffer mapped.
//
// The ring buffer is one metadata page followed by a power-of-two data
// area. The kernel writes records at data_head; we consume up to it and
// publish how far we got in data_tail, which frees the space. Records may
// wrap around the end of the data area: Read copies such a record into a
// contiguous scratch buffer before handing it out, and hands the others
// out in place (a 16 KiB stack copy moved twice per sample was a sixth
// of cpuwhy's CPU while sampling).
type PerfEvent struct {
	fd      int
	mapping []byte
	meta    *unix.PerfEventMmapPage
	data    []byte
	scratch []byte
	lost    uint64 // records the kernel reported lost (PERF_RECORD_LOST)
}

// OpenPerfEvent opens an event for thread tid on any CPU (cpu=-1) and maps
// a ring buffer of dataPages pages (a power of two) behind it. The event
// is opened disabled when attr says so; call Enable. Errors wrap the
// kernel's errno (EACCES/EPERM when not permitted, ESRCH when the thread
// is gone, ENOENT/EOPNOTSUPP/ENODEV/EINVAL when the kernel lacks the event).
func OpenPerfEvent(attr *PerfEventAttr, tid, cpu, dataPages int) (*PerfEvent, error) {
	if dataPages <= 0 || dataPages&(dataPages-1) != 0 {
		return nil, fmt.Errorf("perf ring of %d pages: not a power of two", dataPages)
	}
	attr.Size = uint32(unsafe.Sizeof(*attr))
	fd, err := unix.PerfEventOpen(attr, tid, cpu, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("perf_event_open for thread %d: %w", tid, err)
	}
	page := os.Getpagesize()
	mapping, err := unix.Mmap(fd, 0, (1+dataPages)*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%w of thread %d (%d KiB): %w", ErrPerfRing, tid, (1+dataPages)*page>>10, err)
	}
	e := &PerfEvent{
		fd:      fd,
		mapping: mapping,
		meta:    (*unix.PerfEventMmapPage)(unsafe.Pointer(&mapping[0])),
	}
	// data_offset and data_size are filled in by kernels since 4.1; before
	// that the data area starts right after the first page.
	off, size := uint64(page), uint64(dataPages*page)
	if e.meta.Data_offset != 0 && e.meta.Data_size != 0 {
		off, size = e.meta.Data_offset, e.meta.Data_size
	}
	e.data = mapping[off : off+size]
	return e, nil
}

// OpenPerfEventInto opens an event for thread tid on one CPU whose
// records go to the ring of another event on the same CPU
// (PERF_EVENT_IOC_SET_OUTPUT), as perf record does for a process: one
// ring per CPU, however many threads, where a ring per thread costs each
// thread its own locked memory (256 KiB at 99 Hz: 1.25 GiB for 5,000
// threads) and a drain. The event has no mapping of its own: Read
// returns nothing, and its records are read from ring.
func OpenPerfEventInto(attr *PerfEventAttr, tid, cpu int, ring *PerfEvent) (*PerfEvent, error) {
	attr.Size = uint32(unsafe.Sizeof(*attr))
	fd, err := unix.PerfEventOpen(attr, tid, cpu, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("perf_event_open for thread %d on CPU %d: %w", tid, cpu, err)
	}
	if err := unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_SET_OUTPUT, ring.fd); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("redirecting thread %d's event on CPU %d to its CPU's ring: %w", tid, cpu, err)
	}
	return &PerfEvent{fd: fd}, nil
}

// Exited reports whether the task the event watches has exited: the
// kernel then says POLLHUP on the event (since Linux 3.19), whatever its
// state before, and whether or not it has a ring of its own. An event
// whose thread is gone from /proc/PID/task and that has not exited
// follows a task now known by another TID: the thread that ran exec,
// which took the PID (de_thread).
func (e *PerfEvent) Exited() bool {
	fds := []unix.PollFd{{Fd: int32(e.fd)}}
	for {
		n, err := pollNow(fds)
		if err == unix.EINTR {
			continue
		}
		return err == nil && n == 1 && fds[0].Revents&unix.POLLHUP != 0
	}
}

// FD is the event's file descriptor, for epoll.
func (e *PerfEvent) FD() int { return e.fd }

// Enable starts counting and sampling.
func (e *PerfEvent) Enable() error {
	if err := unix.IoctlSetInt(e.fd, unix.PERF_EVENT_IOC_ENABLE, 0); err != nil {
		return fmt.Errorf("enabling perf event: %w", err)
	}
	return nil
}

// Disable stops it; records already written stay readable.
func (e *PerfEvent) Disable() error {
	if err := unix.IoctlSetInt(e.fd, unix.PERF_EVENT_IOC_DISABLE, 0); err != nil {
		return fmt.Errorf("disabling perf event: %w", err)
	}
	return nil
}

// Close unmaps the ring and closes the event.
func (e *PerfEvent) Close() error {
	if e.fd < 0 {
		return nil
	}
	var err error
	if e.mapping != nil {
		err = unix.Munmap(e.mapping)
	}
	if cerr := unix.Close(e.fd); err == nil {
		err = cerr
	}
	e.fd, e.mapping, e.meta, e.data = -1, nil, nil, nil
	return err
}

// perfHeaderSize is sizeof(struct perf_event_header): u32 type, u16 misc,
// u16 size.
const perfHeaderSize = 8

// Read hands every record written since the last Read to fn, whole: the
// slice starts at the perf_event_header and is valid only during the call.
// It returns the number of records read. Read must not run concurrently
// with itself on one event.
func (e *PerfEvent) Read(fn func(record []byte)) int {
	if e.meta == nil {
		return 0
	}
	return e.ReadTo(e.Head(), fn)
}

// Head is how far the kernel has written, for ReadTo and Peek: taken once
// for every ring, before any is read, it draws a line in time across
// them.
func (e *PerfEvent) Head() uint64 {
	if e.meta == nil {
		return 0
	}
	// The atomic load of data_head orders the reads of the records after
	// it (the smp_rmb the kernel's ring-buffer protocol asks for).
	return atomic.LoadUint64(&e.meta.Data_head)
}

// ReadTo is Read of the records before head, a value Head returned.
func (e *PerfEvent) ReadTo(head uint64, fn func(record []byte)) int {
	if e.meta == nil {
		return 0
	}
	tail, n := e.walk(head, 0, fn)
	// The atomic store of data_tail orders the reads before the kernel
	// may reuse the space (smp_mb). Go's atomics are sequentially
	// consistent, which is stronger than both barriers.
	atomic.StoreUint64(&e.meta.Data_tail, tail)
	return n
}

// Peek hands fn the records of type typ before head, as ReadTo does,
// without consuming them: the next Read or ReadTo hands them out again.
// The others are skipped by their headers, not copied out. It returns
// the number of records handed.
func (e *PerfEvent) Peek(head uint64, typ uint32, fn func(record []byte)) int {
	if e.meta == nil || typ == 0 {
		return 0
	}
	_, n := e.walk(head, typ, fn)
	return n
}

// walk hands fn the records from the tail to head, those of type only
// when it is not 0, and returns where it stopped and how many it handed.
// Reading them all (only 0), it counts PERF_RECORD_LOST.
func (e *PerfEvent) walk(head uint64, only uint32, fn func(record []byte)) (uint64, int) {
	tail := atomic.LoadUint64(&e.meta.Data_tail)
	size := uint64(len(e.data))
	n := 0
	for tail+perfHeaderSize <= head {
		var hdr [perfHeaderSize]byte
		e.copyOut(hdr[:], tail)
		recSize := uint64(binary.NativeEndian.Uint16(hdr[6:8]))
		if recSize < perfHeaderSize || recSize > head-tail || recSize > size {
			// A corrupt or partially visible record: drop what is
			// there rather than loop or read past the head.
			tail = head
			break
		}
		if only != 0 && binary.NativeEndian.Uint32(hdr[0:4]) != only {
			tail += recSize
			continue
		}
		// A record in one piece is handed out where it lies (the kernel
		// does not write over it before the tail passes it); one that
		// wraps around the end is copied out whole.
		var rec []byte
		if start := tail % size; start+recSize <= size {
			rec = e.data[start : start+recSize : start+recSize]
		} else {
			if cap(e.scratch) < int(recSize) {
				e.scratch = make([]byte, recSize)
			}
			rec = e.scratch[:recSize]
			e.copyOut(rec, tail)
		}
		if only == 0 && binary.NativeEndian.Uint32(rec[0:4]) == unix.PERF_RECORD_LOST && recSize >= perfHeaderSize+16 {
			e.lost += binary.NativeEndian.Uint64(rec[16:24])
		}
		fn(rec)
		tail += recSize
		n++
	}
	return tail, n
}

// copyOut copies len(dst) bytes of the data area starting at the ring
// position pos, wrapping around its end.
func (e *PerfEvent) copyOut(dst []byte, pos uint64) {
	size := uint64(len(e.data))
	start := pos % size
	n := copy(dst, e.data[start:])
	if n < len(dst) {
		copy(dst[n:], e.data[:len(dst)-n])
	}
}

// Lost is the number of records the kernel dropped because the ring was
// full, as reported by the PERF_RECORD_LOST records read so far.
func (e *PerfEvent) Lost() uint64 { return e.lost }

// PerfEventParanoid reads /proc/sys/kernel/perf_event_paranoid: -1 allows
// everything, 2 (and Debian's 3) keep unprivileged users out of the
// kernel. The file is absent when the kernel has no perf events.
func PerfEventParanoid() (int, error) {
	var buf [16]byte
	n, err := ReadProcFile("/proc/sys/kernel/perf_event_paranoid", buf[:])
	if err != nil {
		return 0, err
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	if err != nil {
		return 0, fmt.Errorf("reading perf_event_paranoid: %w", err)
	}
	return v, nil
}

// OnlineCPUs lists the CPUs that are online, where per-CPU events can be
// opened.
func OnlineCPUs() ([]int, error) {
	var buf [4096]byte
	n, err := ReadProcFile("/sys/devices/system/cpu/online", buf[:])
	if err != nil {
		return nil, err
	}
	return ParseCPUList(string(buf[:n]))
}

// maxCPUs bounds a CPU list: the kernel's NR_CPUS is at most 8192.
const maxCPUs = 8192

// ParseCPUList parses the kernel's CPU list format ("0-3,8,10-11\n": CPU
// online lists, Cpus_allowed_list, cpuset.cpus), the CPUs in increasing
// order, which is how the kernel writes them.
func ParseCPUList(s string) ([]int, error) {
	var cpus []int
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		first, err := strconv.Atoi(lo)
		if err != nil || first < 0 || first >= maxCPUs {
			return nil, fmt.Errorf("CPU list %q: bad CPU %q", s, lo)
		}
		last := first
		if isRange {
			if last, err = strconv.Atoi(hi); err != nil || last < first || last >= maxCPUs {
				return nil, fmt.Errorf("CPU list %q: bad range %q", s, part)
			}
		}
		if len(cpus)+last-first+1 > maxCPUs {
			return nil, fmt.Errorf("CPU list %q: more than %d CPUs", s, maxCPUs)
		}
		if len(cpus) > 0 && first <= cpus[len(cpus)-1] {
			return nil, fmt.Errorf("CPU list %q: not increasing", s)
		}
		for c := first; c <= last; c++ {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

// EnsureFileLimit raises this process's soft limit on open files to at
// least want, and its hard limit too when it may (CAP_SYS_RESOURCE, up
// to fs.nr_open). It returns the soft limit it leaves, which is less
// than want when the hard limit could not be raised.
func EnsureFileLimit(want uint64) (uint64, error) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("reading RLIMIT_NOFILE: %w", err)
	}
	if lim.Cur >= want {
		return lim.Cur, nil
	}
	if lim.Max < want {
		raised := unix.Rlimit{Cur: want, Max: want}
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &raised); err == nil {
			return want, nil
		}
	}
	lim.Cur = min(want, lim.Max)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("raising RLIMIT_NOFILE to %d: %w", lim.Cur, err)
	}
	return lim.Cur, nil
}

// SetPerfEventBPF attaches the BPF program prog (a perf_event program's
// fd) to the perf event fd (PERF_EVENT_IOC_SET_BPF): it runs at each of
// the event's samples, before the kernel writes the sample, and stays
// attached until the event is closed.
func SetPerfEventBPF(fd, prog int) error {
	if err := unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_SET_BPF, prog); err != nil {
		return fmt.Errorf("attaching BPF program %d to perf event %d: %w", prog, fd, err)
	}
	return nil
}
