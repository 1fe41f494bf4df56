package proc

import (
	"bytes"
	"strconv"
)

// Identity is what stays the same for a process's life and names it to a
// person: its command line and its PID inside its own PID namespace.
type Identity struct {
	Cmdline string // arguments joined by spaces; "" for a zombie or a cleared one
	NsPID   int    // the PID as the process sees itself (NSpid's last field)
}

// maxCmdline caps a command line read: the kernel's limit on the
// arguments of an exec is a quarter of the stack limit, 2 MiB with the
// usual 8 MiB.
const maxCmdline = 2 << 20

// Identity reads the identity of process pid. What cannot be read is left
// as it would be for a process outside any namespace: NsPID is pid. It
// reads the two files itself, rather than through procfs, whose parse of
// the whole status file and stat calls made it a sixth of a cold thread
// view of 10,000 threads in 80 processes (`cpuwhy top`, which reads it
// once per process).
func (f FS) Identity(pid int) Identity {
	id := Identity{NsPID: pid}
	if b, err := f.ReadCapped(maxCmdline, strconv.Itoa(pid), "cmdline"); err == nil {
		id.Cmdline = JoinCmdline(b)
	}
	if st, err := f.Status(pid); err == nil && st.NsPID > 0 {
		id.NsPID = st.NsPID
	}
	return id
}

// JoinCmdline turns /proc/PID/cmdline (arguments ended by NULs) into the
// arguments joined by spaces.
func JoinCmdline(b []byte) string {
	b = bytes.TrimRight(b, "\x00")
	if bytes.IndexByte(b, 0) < 0 {
		return string(b)
	}
	return string(bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
}
