package verdict

import (
	"fmt"
	"slices"
	"strings"

	"github.com/cpuwhy/cpuwhy/internal/syscalls"
)

// write_storm: a thread flooding one fd with writes, each a syscall.
//
// Thresholds: writes (write, writev, sendto, sendmsg and their kin) to one
// fd at WriteRate or more, and WriteShare or more of all the thread's calls.

const (
	// WriteRate is the rate of writes to one fd above which they are a
	// flood: ten thousand a second is a syscall every 100 µs, far more
	// than a program that buffers its output makes.
	WriteRate = 10000.0

	// WriteShare is the part of the thread's calls the writes to that fd
	// must be: a thread that only writes. A server replying on one socket
	// reads as often as it writes, which keeps it below the share.
	WriteShare = 0.8
)

func writeStorm(o *Observation, t *Thread) *Verdict {
	total := float64(t.calls())
	perFD := map[int]uint64{}
	desc := map[int]string{}
	var calls []string
	for _, s := range t.Syscalls {
		if !slices.Contains(syscalls.WriteCalls, s.Name) {
			continue
		}
		for _, fd := range s.FDs {
			perFD[fd.FD] += fd.Count
			desc[fd.FD] = fd.Desc
		}
		calls = append(calls, s.Name)
	}
	best, bestN := -1, uint64(0)
	for fd, n := range perFD {
		if n > bestN || n == bestN && fd < best {
			best, bestN = fd, n
		}
	}
	n := float64(bestN)
	if best < 0 || n/o.Seconds < WriteRate || n/total < WriteShare {
		return nil
	}
	fd := fdString(syscalls.FD{FD: best, Desc: desc[best]})
	v := newVerdict(WriteStorm, t)
	v.Syscall, v.FD = str(calls[0]), str(fd)
	v.Summary = fmt.Sprintf("thread %s floods fd %s with small writes: %s, each a syscall", t.Name, fd, rate(n/o.Seconds))
	v.Evidence = append([]string{cpuLine(t),
		fmt.Sprintf("%s to fd %s %s (%.1f%% of the thread's calls)", strings.Join(calls, "/"), fd, rate(n/o.Seconds), pct(n, total))}, stackLine(t)...)
	v.Advice = "buffer the output and write it in larger blocks (stdio full buffering, a log library's buffered appender); lower the log level; rate-limit repeated messages"
	return v
}
