package taskiter

//go:generate go tool bpf2go -cc clang-14 -strip llvm-strip-14 -target amd64,arm64 procs bpf/procs.bpf.c -- -O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu
//go:generate go tool bpf2go -cc clang-14 -strip llvm-strip-14 -target amd64,arm64 procwalk bpf/procwalk.bpf.c -- -O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
)

// ProcTime is one process's CPU as Procs lists it.
type ProcTime struct {
	TGID      int
	StartTime uint64 // clock ticks after boot, as /proc's
	Comm      string // its leader's, as /proc/PID/stat's
	// RunTime is the CPU time, in ns, of all its threads since it
	// started, those that exited included: what /proc/PID/stat's utime
	// and stime add up to, not split into the two.
	RunTime uint64
	Threads int // live threads listed

	leader bool // its leader's record was read
}

// procRecordSize is sizeof(struct proc_rec) in procs.bpf.c, walkedSize
// sizeof(struct proc_cpu) in procwalk.bpf.c.
const (
	procRecordSize = 48
	walkedSize     = 40
)

// maxWalked is MAX_PROCS in procwalk.bpf.c: the processes one run of the
// walker has room for.
const maxWalked = 16384

// Procs lists the CPU of every user process of the host, for a caller
// that wants it often (a watch, once a second) and needs neither the
// threads nor what /proc/PID/stat says besides. Two programs do it:
//
//   - on Linux 6.7 and later, one program run (BPF_PROG_RUN) walks the
//     kernel's task lists with open-coded task iterators and adds the
//     threads up per process in the kernel (procwalk.bpf.c); user space
//     reads one 40-byte record per process from a memory-mapped array;
//   - before, or when the host holds more than maxWalked processes, an
//     iter/task program (procs.bpf.c, as Iter's) writes a 48-byte record
//     per thread that List adds up; the kernel then looks up and
//     references each thread, about 0.7 us each on this VM, which is
//     what the walker saves.
type Procs struct {
	walk *walker // nil when the walker cannot load here
	recs *records
	// index is where each process is in the list being built.
	index map[int]int
	// comms keeps the name strings of the last List, so that a process
	// whose name did not change allocates none.
	comms, next map[int]string
	raw         []byte
}

// walker is the loaded procwalk program and the memory it writes.
type walker struct {
	coll          *ebpf.Collection
	prog          *ebpf.Program
	mem           *ebpf.Memory
	procs, nprocs uint32 // offsets of the variables in mem
}

// records is the loaded iter/task program of procs.bpf.c.
type records struct {
	objs procsObjects
	link *link.Iter
}

// OpenProcs loads the process walker, or else the iter/task program;
// the error matches ErrNotSupported when neither can run.
func OpenProcs() (*Procs, error) {
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, notSupported("raising RLIMIT_MEMLOCK for BPF", recordsFeature, recordsSince, err)
	}
	p := &Procs{index: map[int]int{}, comms: map[int]string{}, next: map[int]string{}}
	var err error
	if p.walk, err = openWalker(); err != nil {
		if p.recs, err = openRecords(); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Walking reports whether List walks the task lists in one program run
// (Linux 6.7 and later) rather than reading a record per thread.
func (p *Procs) Walking() bool { return p.walk != nil }

func openWalker() (*walker, error) {
	spec, err := loadProcwalk()
	if err != nil {
		return nil, notSupported("loading the BPF process walker", walkerFeature, walkerSince, err)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return nil, notSupported("loading the BPF process walker", walkerFeature, walkerSince, err)
	}
	w := &walker{coll: coll, prog: coll.Programs[procwalkProgWalkProcs]}
	vp, vn := spec.Variables[procwalkVarProcs], spec.Variables[procwalkVarNprocs]
	m := coll.Maps[vp.SectionName]
	if w.prog == nil || m == nil || vn.SectionName != vp.SectionName || vp.Size() != maxWalked*walkedSize {
		coll.Close()
		return nil, fmt.Errorf("the BPF process walker: not the object procs.go expects")
	}
	if w.mem, err = m.Memory(); err != nil {
		coll.Close()
		return nil, notSupported("mapping the BPF process walker's memory", walkerFeature, walkerSince, err)
	}
	w.procs, w.nprocs = vp.Offset, vn.Offset
	return w, nil
}

func openRecords() (*records, error) {
	r := &records{}
	if err := loadProcsObjects(&r.objs, nil); err != nil {
		return nil, notSupported("loading the BPF process iterator", recordsFeature, recordsSince, err)
	}
	l, err := link.AttachIter(link.IterOptions{Program: r.objs.DumpProc})
	if err != nil {
		r.objs.Close()
		return nil, notSupported("attaching the BPF process iterator", recordsFeature, recordsSince, err)
	}
	r.link = l
	return r, nil
}

// Close releases the programs.
func (p *Procs) Close() error {
	var err error
	if p.walk != nil {
		p.walk.coll.Close()
	}
	if p.recs != nil {
		err = p.recs.link.Close()
		if cerr := p.recs.objs.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// List returns every user process of the host, sorted by TGID, appended
// to procs.
func (p *Procs) List(procs []ProcTime) ([]ProcTime, error) {
	if p.walk != nil {
		out, err := p.walked(procs)
		if !errors.Is(err, errTooMany) {
			return out, err
		}
		if p.recs == nil {
			if p.recs, err = openRecords(); err != nil {
				return procs, fmt.Errorf("more than %d processes for the walker: %w", maxWalked, err)
			}
		}
		// A host that outgrew the walker reads records from now on,
		// rather than walking every task in vain at each listing.
		p.walk.coll.Close()
		p.walk = nil
	}
	return p.listRecords(procs)
}

var errTooMany = errors.New("more tasks than the walker has room for")

// walked runs the walker once and reads its records.
func (p *Procs) walked(procs []ProcTime) ([]ProcTime, error) {
	w := p.walk
	if _, err := w.prog.Run(&ebpf.RunOptions{}); err != nil {
		return procs, fmt.Errorf("running the process walker: %w", err)
	}
	var nb [4]byte
	if _, err := w.mem.ReadAt(nb[:], int64(w.nprocs)); err != nil {
		return procs, fmt.Errorf("reading the process walker's count: %w", err)
	}
	n := int(binary.NativeEndian.Uint32(nb[:]))
	if n > maxWalked {
		return procs, errTooMany
	}
	p.raw = slices.Grow(p.raw[:0], n*walkedSize)[:n*walkedSize]
	if _, err := w.mem.ReadAt(p.raw, int64(w.procs)); err != nil {
		return procs, fmt.Errorf("reading the process walker's records: %w", err)
	}
	base := len(procs)
	clear(p.next)
	for off := 0; off < len(p.raw); off += walkedSize {
		b := p.raw[off : off+walkedSize]
		tgid := int(binary.NativeEndian.Uint32(b[0:]))
		procs = append(procs, ProcTime{
			TGID:      tgid,
			Threads:   int(binary.NativeEndian.Uint32(b[4:])),
			RunTime:   binary.NativeEndian.Uint64(b[8:]),
			StartTime: toTicks(binary.NativeEndian.Uint64(b[16:])),
			Comm:      p.comm(tgid, b[24:40]),
		})
	}
	p.comms, p.next = p.next, p.comms
	// In the kernel's order of processes (newest first, after init):
	// sorted here, as /proc lists them.
	slices.SortFunc(procs[base:], func(a, b ProcTime) int { return a.TGID - b.TGID })
	return procs, nil
}

// listRecords runs the iter/task program once and adds its records up.
// A thread whose leader the listing does not hold (it appeared between
// the two) is left out with its process, which the next List finds
// whole.
func (p *Procs) listRecords(procs []ProcTime) ([]ProcTime, error) {
	if err := p.read(); err != nil {
		return procs, err
	}
	base := len(procs)
	clear(p.index)
	clear(p.next)
	for off := 0; off < len(p.raw); off += procRecordSize {
		r := parseProc(p.raw[off : off+procRecordSize])
		i, ok := p.index[r.tgid]
		if !ok {
			i = len(procs)
			p.index[r.tgid] = i
			procs = append(procs, ProcTime{TGID: r.tgid})
		}
		pt := &procs[i]
		pt.RunTime += r.rtime
		pt.Threads++
		if r.tid == r.tgid {
			pt.RunTime += r.gone
			pt.StartTime = toTicks(r.start)
			pt.Comm = p.comm(r.tgid, r.comm)
			pt.leader = true
		}
	}
	p.comms, p.next = p.next, p.comms
	out := procs[:base]
	for _, pt := range procs[base:] {
		if pt.leader {
			out = append(out, pt)
		}
	}
	slices.SortFunc(out[base:], func(a, b ProcTime) int { return a.TGID - b.TGID })
	return out, nil
}

// comm returns the name in b as a string, the last List's when it is the
// same.
func (p *Procs) comm(tgid int, b []byte) string {
	for i, c := range b {
		if c == 0 {
			b = b[:i]
			break
		}
	}
	s, ok := p.comms[tgid]
	if !ok || s != string(b) { // the comparison does not allocate
		s = string(b)
	}
	p.next[tgid] = s
	return s
}

// read runs the iter/task program once into p.raw.
func (p *Procs) read() error {
	r, err := p.recs.link.Open()
	if err != nil {
		return fmt.Errorf("running the process iterator: %w", err)
	}
	defer r.Close()
	p.raw = p.raw[:0]
	for {
		if len(p.raw) == cap(p.raw) {
			if len(p.raw) >= maxTasks*procRecordSize {
				return fmt.Errorf("running the process iterator: more than %d tasks", maxTasks)
			}
			p.raw = slices.Grow(p.raw, max(64<<10, len(p.raw)))
		}
		n, err := r.Read(p.raw[len(p.raw):cap(p.raw)])
		p.raw = p.raw[:len(p.raw)+n]
		if errors.Is(err, io.EOF) || (err == nil && n == 0) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading the process iterator: %w", err)
		}
	}
	if left := len(p.raw) % procRecordSize; left != 0 {
		return fmt.Errorf("reading the process iterator: %d bytes left over", left)
	}
	return nil
}

// procRecord is struct proc_rec.
type procRecord struct {
	tgid, tid          int
	rtime, gone, start uint64
	comm               []byte
}

func parseProc(b []byte) procRecord {
	return procRecord{
		tgid:  int(binary.NativeEndian.Uint32(b[0:])),
		tid:   int(binary.NativeEndian.Uint32(b[4:])),
		rtime: binary.NativeEndian.Uint64(b[8:]),
		gone:  binary.NativeEndian.Uint64(b[16:]),
		start: binary.NativeEndian.Uint64(b[24:]),
		comm:  b[32:48],
	}
}
