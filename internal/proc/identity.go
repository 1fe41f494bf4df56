package proc

import (
	"bytes"
	"io"
	"os"
)

// Identity is what stays the same for a process's life and names it to a
// person: its command line and its PID inside its own PID namespace.
type Identity struct {
	Cmdline string // arguments joined by spaces; "" for a zombie or a cleared one
	NsPID   int    // the PID as the process sees itself (NSpid's last field)
}

// maxCmdline caps the command line Identity reads: it is shown, so a
// prefix of a huge one will do (prometheus/procfs, which this replaced,
// read the same 1 MiB).
const maxCmdline = 1 << 20

// Identity reads the identity of process pid. What cannot be read is left
// as it would be for a process outside any namespace: NsPID is pid. It
// reads two files with the package's own readers: a cold thread view
// reads it for every process, and prometheus/procfs's full parse of
// status (with a stat of the mount and of the process first) was most of
// the view's CPU once threads came from the task iterator.
func (f FS) Identity(pid int) Identity {
	id := Identity{NsPID: pid}
	if b, err := readPrefix(f.PIDPath(pid, "cmdline"), maxCmdline); err == nil {
		id.Cmdline = ParseCmdline(b)
	}
	if st, err := f.Status(pid); err == nil && st.NsPID > 0 {
		id.NsPID = st.NsPID
	}
	return id
}

// readPrefix reads at most max bytes of a file.
func readPrefix(name string, max int64) ([]byte, error) {
	file, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	return io.ReadAll(io.LimitReader(file, max))
}

// ParseCmdline joins /proc/PID/cmdline's NUL-separated arguments with
// spaces.
func ParseCmdline(b []byte) string {
	b = bytes.TrimRight(b, "\x00")
	out := make([]byte, len(b))
	for i, c := range b {
		if c == 0 {
			c = ' '
		}
		out[i] = c
	}
	return string(out)
}
