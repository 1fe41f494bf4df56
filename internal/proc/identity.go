package proc

import (
	"strings"

	"github.com/prometheus/procfs"
)

// Identity is what stays the same for a process's life and names it to a
// person: its command line and its PID inside its own PID namespace.
type Identity struct {
	Cmdline string // arguments joined by spaces; "" for a zombie or a cleared one
	NsPID   int    // the PID as the process sees itself (NSpid's last field)
}

// Identity reads the identity of process pid. What cannot be read is left
// as it would be for a process outside any namespace: NsPID is pid.
func (f FS) Identity(pid int) Identity {
	id := Identity{NsPID: pid}
	fs, err := procfs.NewFS(f.root())
	if err != nil {
		return id
	}
	p, err := fs.Proc(pid)
	if err != nil {
		return id
	}
	if args, err := p.CmdLine(); err == nil {
		id.Cmdline = strings.Join(args, " ")
	}
	if st, err := p.NewStatus(); err == nil && len(st.NSpids) > 0 {
		id.NsPID = int(st.NSpids[len(st.NSpids)-1])
	}
	return id
}
