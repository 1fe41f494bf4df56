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
// The wording rests on measures: the writes are called small only when
// the bytes they returned average below SmallWriteBytes, and the advice
// depends on what the fd is (a file or terminal, a socket, a pipe).

const (
	// WriteRate is the rate of writes to one fd above which they are a
	// flood: ten thousand a second is a syscall every 100 µs, far more
	// than a program that buffers its output makes.
	WriteRate = 10000.0

	// WriteShare is the part of the thread's calls the writes to that fd
	// must be: a thread that only writes. A server replying on one socket
	// reads as often as it writes, which keeps it below the share.
	WriteShare = 0.8

	// SmallWriteBytes is the mean size (bytes returned) below which the
	// writes are small: a log line or a short message is well under a
	// kilobyte, while a buffered writer hands the kernel 4 KiB or more at
	// a time (glibc stdio writes its buffer, st_blksize, 4 KiB for a pipe
	// or a file). At or above it, each write already carries a buffer's
	// worth: the cost is the volume of data, not the number of calls.
	SmallWriteBytes = 1024.0
)

// fdKind is what an fd is, from its description (package fds).
type fdKind int

const (
	fdUnknown fdKind = iota
	fdFile           // a file, a device, a terminal
	fdSocket
	fdPipe
)

func kindOf(desc string) fdKind {
	switch {
	case desc == "":
		return fdUnknown
	case strings.HasPrefix(desc, "pipe:"):
		return fdPipe
	case strings.HasPrefix(desc, "/"):
		return fdFile
	case strings.Contains(desc, "socket:["):
		return fdSocket
	}
	for _, p := range []string{"tcp", "udp", "unix", "raw", "netlink", "packet", "sctp"} {
		if strings.HasPrefix(desc, p) {
			return fdSocket
		}
	}
	return fdUnknown
}

func writeStorm(o *Observation, t *Thread) *Verdict {
	total := float64(t.calls())
	perFD := map[int]uint64{}
	bytes := map[int]uint64{}
	desc := map[int]string{}
	var calls []string
	for _, s := range t.Syscalls {
		if !slices.Contains(syscalls.WriteCalls, s.Name) {
			continue
		}
		for _, fd := range s.FDs {
			perFD[fd.FD] += fd.Count
			bytes[fd.FD] += fd.Bytes
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
	kind := kindOf(desc[best])
	v := newVerdict(WriteStorm, t)
	v.Syscall, v.FD = str(calls[0]), str(fd)
	// No byte count (a profile recorded before it was kept, or writes
	// that all returned 0): say nothing of the writes' size.
	mean := float64(bytes[best]) / n
	measured := bytes[best] > 0
	small := measured && mean < SmallWriteBytes
	line := fmt.Sprintf("%s to fd %s %s (%.1f%% of the thread's calls)", strings.Join(calls, "/"), fd, rate(n/o.Seconds), pct(n, total))
	if measured {
		line += fmt.Sprintf(", %s each on average, %s/s in all", size(mean), size(float64(bytes[best])/o.Seconds))
	}
	switch {
	case small:
		v.Summary = fmt.Sprintf("thread %s floods fd %s with small writes: %s of %s on average, each a syscall", t.Name, fd, rate(n/o.Seconds), size(mean))
	case measured:
		v.Summary = fmt.Sprintf("thread %s writes to fd %s at %s, %s each: the writes are not small, the CPU goes with the volume of data (%s/s)",
			t.Name, fd, rate(n/o.Seconds), size(mean), size(float64(bytes[best])/o.Seconds))
	default:
		v.Summary = fmt.Sprintf("thread %s floods fd %s with writes: %s, each a syscall", t.Name, fd, rate(n/o.Seconds))
	}
	v.Evidence = append([]string{cpuLine(t), line}, stackLine(t)...)
	v.Advice = writeAdvice(kind, small, measured)
	if desc[best] == "/dev/null" {
		v.Advice = "the data goes to /dev/null, where nothing reads it: stop producing it, or produce less; " + v.Advice
	}
	return v
}

// writeAdvice is what fixes a write flood, by what the fd is and whether
// the writes were measured small.
func writeAdvice(kind fdKind, small, measured bool) string {
	if measured && !small {
		switch kind {
		case fdSocket:
			return "each write already carries a buffer's worth: send less data, or check that the peer needs all of it; to send a file, sendfile or splice save the copy through user space"
		case fdPipe:
			return "each write already carries a buffer's worth: write less data, or check that the reader at the other end needs all of it; to move a file's data, splice saves the copy through user space"
		case fdFile:
			return "each write already carries a buffer's worth: write less data, or check that anything reads it; to copy a file, copy_file_range or sendfile save the copy through user space"
		}
		return "each write already carries a buffer's worth: write less data, or check that whatever reads it needs all of it"
	}
	switch kind {
	case fdSocket:
		return "coalesce the messages into fewer, larger sends (a user-space buffer flushed per batch, writev or sendmmsg, MSG_MORE or TCP_CORK on TCP)"
	case fdPipe:
		return "buffer the output and write it in larger blocks (stdio full buffering, a buffered writer): the reader at the other end also wakes once per write"
	case fdFile:
		return "buffer the output and write it in larger blocks (stdio full buffering, a log library's buffered appender); if it is a log, lower the log level or rate-limit repeated messages"
	}
	return "buffer the output and write it in larger blocks (stdio full buffering, a buffered writer)"
}

// size formats a byte count: 512 B, 8.0 KiB, 2.1 GiB.
func size(b float64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", b/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", b/(1<<10))
	}
	return fmt.Sprintf("%.0f B", b)
}
