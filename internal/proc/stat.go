package proc

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
)

// Stat is the part of /proc/PID/stat (or /proc/PID/task/TID/stat) that
// cpuwhy uses. Times are in clock ticks (USER_HZ).
type Stat struct {
	PID   int
	Comm  string
	State byte
	PPID  int
	Flags uint64
	UTime uint64
	STime uint64
	// CUTime and CSTime are the user and system time of children that
	// exited and were waited for: where a process that forks and execs
	// short-lived children spends its CPU.
	CUTime, CSTime uint64
	Nice           int // -20 (most favoured) to 19
	NumThreads     int
	StartTime      uint64 // ticks after boot; with PID it names one process across PID reuse
	RSSPages       int64
	Processor      int
}

// pfKthread is PF_KTHREAD from include/linux/sched.h: set in the flags of
// every kernel thread, which has no user space to diagnose.
const pfKthread = 0x00200000

// KernelThread reports whether the task is a kernel thread.
func (s Stat) KernelThread() bool { return s.Flags&pfKthread != 0 }

// Exited reports whether the task has exited: a zombie waiting to be
// reaped, or dead. A process whose main thread exited while others run
// shows its main thread so too: see Process.Exited.
func (s Stat) Exited() bool { return s.State == 'Z' || s.State == 'X' }

// ErrStatFormat is returned for a stat line that does not parse.
var ErrStatFormat = errors.New("malformed stat line")

// Field positions after the ") " that closes comm, numbered from state = 0
// as in proc(5) minus 3.
const (
	fieldState      = 0
	fieldPPID       = 1
	fieldFlags      = 6
	fieldUTime      = 11
	fieldSTime      = 12
	fieldCUTime     = 13
	fieldCSTime     = 14
	fieldNice       = 16
	fieldNumThreads = 17
	fieldStartTime  = 19
	fieldRSS        = 21
	fieldProcessor  = 36
	fieldsNeeded    = fieldRSS + 1
)

// ParseStat parses one stat line. It is written by hand rather than taken
// from procfs's ProcStat because that parser goes through fmt.Fscan, which
// costs tens of microseconds per line; cpuwhy parses one line per thread on
// every refresh, and at ten thousand threads that alone would exceed its CPU
// budget. Comm may contain spaces and parentheses, so it is delimited by the
// first "(" and the last ")".
func ParseStat(data []byte) (Stat, error) {
	var s Stat
	l := bytes.IndexByte(data, '(')
	r := bytes.LastIndexByte(data, ')')
	if l < 1 || r < l || r+2 > len(data) {
		return s, fmt.Errorf("%w: no (comm) in %q", ErrStatFormat, truncate(data))
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(data[:l])))
	if err != nil {
		return s, fmt.Errorf("%w: pid: %w", ErrStatFormat, err)
	}
	s.PID = pid
	s.Comm = string(data[l+1 : r])

	rest := data[r+1:]
	field := 0
	for field <= fieldProcessor && len(rest) > 0 {
		if rest[0] == ' ' {
			rest = rest[1:]
			continue
		}
		if rest[0] == '\n' {
			break
		}
		end := bytes.IndexByte(rest, ' ')
		if end < 0 {
			end = len(rest)
		}
		tok := bytes.TrimSuffix(rest[:end], []byte{'\n'})
		rest = rest[end:]
		if err := s.set(field, tok); err != nil {
			return Stat{}, fmt.Errorf("%w: field %d %q: %w", ErrStatFormat, field+3, tok, err)
		}
		field++
	}
	if field < fieldsNeeded {
		return Stat{}, fmt.Errorf("%w: %d fields after comm, want at least %d", ErrStatFormat, field, fieldsNeeded)
	}
	return s, nil
}

func (s *Stat) set(field int, tok []byte) error {
	var err error
	switch field {
	case fieldState:
		if len(tok) != 1 {
			return errors.New("state is not one letter")
		}
		s.State = tok[0]
	case fieldPPID:
		s.PPID, err = atoi(tok)
	case fieldFlags:
		s.Flags, err = atou(tok)
	case fieldUTime:
		s.UTime, err = atou(tok)
	case fieldSTime:
		s.STime, err = atou(tok)
	case fieldCUTime:
		s.CUTime, err = atou(tok)
	case fieldCSTime:
		s.CSTime, err = atou(tok)
	case fieldNice:
		s.Nice, err = atoi(tok)
	case fieldNumThreads:
		s.NumThreads, err = atoi(tok)
	case fieldStartTime:
		s.StartTime, err = atou(tok)
	case fieldRSS:
		var v int
		v, err = atoi(tok)
		s.RSSPages = int64(v)
	case fieldProcessor:
		s.Processor, err = atoi(tok)
	}
	return err
}

// atou and atoi avoid the string conversion strconv needs; the stat line's
// numbers are plain decimal.
func atou(b []byte) (uint64, error) {
	if len(b) == 0 || len(b) > 20 {
		return 0, strconv.ErrSyntax
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, strconv.ErrSyntax
		}
		d := uint64(c - '0')
		if v > (math.MaxUint64-d)/10 {
			return 0, strconv.ErrRange
		}
		v = v*10 + d
	}
	return v, nil
}

func atoi(b []byte) (int, error) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	u, err := atou(b)
	if err != nil {
		return 0, err
	}
	if u > 1<<62 {
		return 0, strconv.ErrRange
	}
	if neg {
		return -int(u), nil
	}
	return int(u), nil
}

func truncate(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}
