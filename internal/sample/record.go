package sample

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Layout says how the records of one event are laid out: the attr's
// sample_type and sample_regs_user decide which fields are present, and
// the attr's sample_stack_user bounds the stack copy.
type Layout struct {
	SampleType uint64
	RegsMask   uint64
	StackBytes uint32
	// SampleIDAll says that records other than samples (PERF_RECORD_COMM)
	// end with the sample_id fields of SampleType: TID, TIME and the ids.
	SampleIDAll bool
	// Register numbers (bits of RegsMask) of IP, SP, BP/frame pointer and
	// link register in this architecture's perf_regs enum; -1 when absent.
	RegIP, RegSP, RegBP, RegLR int
}

// Regs are the user registers at the sample; on a sample taken in the
// kernel they are those of the system call's entry.
type Regs struct {
	IP, SP, BP uint64
	LR         uint64 // arm64 only
}

// Sample is one on-CPU sample of one thread.
type Sample struct {
	TID    int
	Time   uint64   // CLOCK_MONOTONIC-like perf clock, ns
	Period uint64   // ns of CPU time this sample stands for
	IP     uint64   // where the thread was: a kernel PC when it ran in the kernel
	Kernel []uint64 // kernel callchain PCs, innermost first, PERF_CONTEXT_* markers stripped
	// UserRegsValid is false when the kernel had no user registers to
	// give (a kernel thread, or the sample hit during exit).
	UserRegsValid bool
	Regs          Regs
	Stack         []byte // user stack copy starting at Regs.SP
}

// maxCallchain caps the callchain length the parser accepts (the kernel's
// own sysctl_perf_event_max_stack defaults to 127).
const maxCallchain = 512

// perfContextMax is PERF_CONTEXT_MAX: callchain entries at or above it
// (as unsigned) are PERF_CONTEXT_KERNEL/USER/... markers, not PCs.
const perfContextMax = ^uint64(4095 - 1) // (u64)-4095

// Record types and sample bits, as in linux/perf_event.h.
const (
	recordComm       = 3
	recordFork       = 7
	recordThrottle   = 5
	recordUnthrottle = 6
	recordSample     = 9

	sampleIP         = 1 << 0
	sampleTID        = 1 << 1
	sampleTime       = 1 << 2
	sampleAddr       = 1 << 3
	sampleID         = 1 << 6
	sampleCPU        = 1 << 7
	samplePeriod     = 1 << 8
	sampleStreamID   = 1 << 9
	sampleCallchain  = 1 << 5
	sampleRegsUser   = 1 << 12
	sampleStackUser  = 1 << 13
	sampleIdentifier = 1 << 16

	miscCommExec = 1 << 13 // PERF_RECORD_MISC_COMM_EXEC

	// sampleSupported is what ParseSample understands; READ, RAW and
	// BRANCH_STACK would sit between PERIOD and REGS_USER.
	sampleSupported = sampleIP | sampleTID | sampleTime | sampleAddr | sampleID | sampleCPU |
		samplePeriod | sampleStreamID | sampleCallchain | sampleRegsUser | sampleStackUser
)

// FormatError is a malformed record: Offset is where in it parsing failed.
type FormatError struct {
	Offset int
	Msg    string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("perf record: %s at offset %d", e.Msg, e.Offset)
}

var errUnsupportedLayout = errors.New("sample_type has fields the parser does not know")

type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) u64() uint64 {
	if r.err != nil {
		return 0
	}
	if len(r.b)-r.off < 8 {
		r.err = &FormatError{r.off, "truncated"}
		return 0
	}
	v := binary.NativeEndian.Uint64(r.b[r.off:])
	r.off += 8
	return v
}

func (r *reader) bytes(n uint64) []byte {
	if r.err != nil {
		return nil
	}
	if uint64(len(r.b)-r.off) < n {
		r.err = &FormatError{r.off, "truncated"}
		return nil
	}
	b := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return b
}

// RecordType returns the type of a record starting with its
// perf_event_header.
func RecordType(rec []byte) (uint32, bool) {
	if len(rec) < 8 {
		return 0, false
	}
	return binary.NativeEndian.Uint32(rec), true
}

// ParseSample parses a PERF_RECORD_SAMPLE record (starting with its
// header) laid out as l says. Kernel and Stack alias rec: copy them to
// keep them past rec's lifetime. The stack copy is bounded by
// l.StackBytes and the callchain by 512 entries, whatever the record
// claims.
func ParseSample(rec []byte, l Layout) (Sample, error) {
	var s Sample
	if l.SampleType&^sampleSupported != 0 {
		return s, errUnsupportedLayout
	}
	if len(rec) < 8 {
		return s, &FormatError{0, "short header"}
	}
	if t := binary.NativeEndian.Uint32(rec); t != recordSample {
		return s, &FormatError{0, fmt.Sprintf("record type %d is not a sample", t)}
	}
	size := int(binary.NativeEndian.Uint16(rec[6:]))
	if size < 8 {
		return s, &FormatError{6, fmt.Sprintf("record size %d is smaller than its header", size)}
	}
	if size < len(rec) {
		rec = rec[:size]
	}
	r := &reader{b: rec, off: 8}
	st := l.SampleType
	if st&sampleIP != 0 {
		s.IP = r.u64()
	}
	if st&sampleTID != 0 {
		if b := r.bytes(8); b != nil {
			s.TID = int(binary.NativeEndian.Uint32(b[4:])) // u32 pid, u32 tid
		}
	}
	if st&sampleTime != 0 {
		s.Time = r.u64()
	}
	if st&sampleAddr != 0 {
		r.u64()
	}
	if st&sampleID != 0 {
		r.u64()
	}
	if st&sampleStreamID != 0 {
		r.u64()
	}
	if st&sampleCPU != 0 {
		r.u64()
	}
	if st&samplePeriod != 0 {
		s.Period = r.u64()
	}
	if st&sampleCallchain != 0 {
		nr := r.u64()
		if nr > maxCallchain {
			return s, &FormatError{r.off - 8, fmt.Sprintf("callchain of %d entries", nr)}
		}
		ips := r.bytes(nr * 8)
		for i := 0; i+8 <= len(ips); i += 8 {
			pc := binary.NativeEndian.Uint64(ips[i:])
			if pc >= perfContextMax {
				continue
			}
			s.Kernel = append(s.Kernel, pc)
		}
	}
	if st&sampleRegsUser != 0 {
		abi := r.u64()
		if abi != 0 {
			s.UserRegsValid = true
			for bit := 0; bit < 64; bit++ {
				if l.RegsMask&(1<<bit) == 0 {
					continue
				}
				v := r.u64()
				switch bit {
				case l.RegIP:
					s.Regs.IP = v
				case l.RegSP:
					s.Regs.SP = v
				case l.RegBP:
					s.Regs.BP = v
				case l.RegLR:
					s.Regs.LR = v
				}
			}
		}
	}
	if st&sampleStackUser != 0 {
		size := r.u64()
		if size > uint64(l.StackBytes) {
			return s, &FormatError{r.off - 8, fmt.Sprintf("stack copy of %d bytes exceeds the %d asked for", size, l.StackBytes)}
		}
		if size > 0 {
			data := r.bytes(size)
			dyn := r.u64()
			if dyn > size {
				dyn = size
			}
			if data != nil {
				s.Stack = data[:dyn]
			}
		}
	}
	if r.err != nil {
		return Sample{}, r.err
	}
	return s, nil
}

// Comm is a PERF_RECORD_COMM: a thread's new name, given by exec or by a
// rename (prctl PR_SET_NAME).
type Comm struct {
	PID, TID int // after the exec: a thread that ran exec has the PID's TID
	Comm     string
	Exec     bool   // the name came with an exec: the process runs a new image
	Time     uint64 // when, on the clock of Sample.Time; 0 without SampleIDAll
}

// maxComm bounds the name ParseComm returns; the kernel's are at most 15
// bytes (TASK_COMM_LEN).
const maxComm = 64

// ParseComm parses a PERF_RECORD_COMM record (starting with its header)
// of an event laid out as l says.
func ParseComm(rec []byte, l Layout) (Comm, error) {
	var c Comm
	if len(rec) < 8 {
		return c, &FormatError{0, "short header"}
	}
	if t := binary.NativeEndian.Uint32(rec); t != recordComm {
		return c, &FormatError{0, fmt.Sprintf("record type %d is not a comm", t)}
	}
	c.Exec = binary.NativeEndian.Uint16(rec[4:])&miscCommExec != 0
	size := int(binary.NativeEndian.Uint16(rec[6:]))
	if size > len(rec) {
		return c, &FormatError{6, fmt.Sprintf("record size %d is larger than the %d bytes read", size, len(rec))}
	}
	rec = rec[:size]
	// sample_id: { u32 pid, tid } { u64 time } { u64 id } { u64 stream_id }
	// { u32 cpu, res } { u64 id }, each when its bit is set.
	idSize, timeAt := 0, -1
	if l.SampleIDAll {
		for _, bit := range []uint64{sampleTID, sampleTime, sampleID, sampleStreamID, sampleCPU, sampleIdentifier} {
			if l.SampleType&bit == 0 {
				continue
			}
			if bit == sampleTime {
				timeAt = idSize
			}
			idSize += 8
		}
	}
	if len(rec) < 16+idSize {
		return Comm{}, &FormatError{len(rec), "truncated"}
	}
	c.PID = int(binary.NativeEndian.Uint32(rec[8:]))
	c.TID = int(binary.NativeEndian.Uint32(rec[12:]))
	id := len(rec) - idSize
	name := rec[16:id]
	if i := bytes.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	if len(name) > maxComm {
		return Comm{}, &FormatError{16, fmt.Sprintf("name of %d bytes", len(name))}
	}
	c.Comm = string(name)
	if timeAt >= 0 {
		c.Time = binary.NativeEndian.Uint64(rec[id+timeAt:])
	}
	return c, nil
}
