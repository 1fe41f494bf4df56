package proc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
)

// Status is what cpuwhy needs of /proc/PID/status: which process a task
// belongs to, its ID inside its own PID namespace, and who traces it. The
// kernel answers /proc/TID/status for any thread's TID, though /proc lists
// only processes, so a TID given as a PID is told apart here.
type Status struct {
	TGID      int // the process (thread group) the task belongs to: its PID
	NsPID     int // the task's ID as seen in its own PID namespace (NSpid's last field)
	TracerPID int // the task tracing this one with ptrace; 0 when none
	// EUID and EGID are the task's effective user and group, as the
	// host sees them (Uid's and Gid's second fields).
	EUID, EGID int
	// SigCgt is the set of signals the task catches (bit n-1 for signal
	// n): a runtime asked to act on a signal must have a handler for it,
	// or the signal's default action (often death) would follow.
	SigCgt uint64
}

// ErrStatusFormat is returned for a status file that does not parse.
var ErrStatusFormat = errors.New("malformed status file")

// maxStatus caps what ParseStatus reads: the kernel writes a few
// kilobytes (Cpus_allowed lists grow with the CPUs), the fields cpuwhy
// reads are in the first dozen lines.
const maxStatus = 64 << 10

// Status reads the status of task pid: a process, or a thread named by
// its TID.
func (f FS) Status(pid int) (Status, error) {
	return f.readStatus(pid, f.PIDPath(pid, "status"))
}

// TaskStatus reads the status of thread tid of process pid.
func (f FS) TaskStatus(pid, tid int) (Status, error) {
	return f.readStatus(tid, f.TaskPath(pid, tid, "status"))
}

func (f FS) readStatus(id int, path string) (Status, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Status{}, fmt.Errorf("reading status of %d: %w", id, gone(err))
	}
	st, err := ParseStatus(data)
	if err != nil {
		return Status{}, fmt.Errorf("status of %d: %w", id, err)
	}
	return st, nil
}

// ParseStatus parses the text of a status file. Tgid is required; a
// missing NSpid (kernels before 4.1) leaves NsPID at the task's Pid.
func ParseStatus(data []byte) (Status, error) {
	var st Status
	if len(data) > maxStatus {
		data = data[:maxStatus]
	}
	var pid int
	var haveTGID bool
	for len(data) > 0 {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte{'\n'})
		key, value, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			continue
		}
		fields := bytes.Fields(value)
		if len(fields) == 0 {
			continue
		}
		var dst *int
		switch string(key) {
		case "Tgid":
			dst, haveTGID = &st.TGID, true
		case "Pid":
			dst = &pid
		case "TracerPid":
			dst = &st.TracerPID
		case "NSpid":
			dst, fields = &st.NsPID, fields[len(fields)-1:]
		case "Uid", "Gid":
			if len(fields) < 2 {
				return Status{}, fmt.Errorf("%w: %s %q", ErrStatusFormat, key, value)
			}
			dst, fields = &st.EUID, fields[1:]
			if key[0] == 'G' {
				dst = &st.EGID
			}
		case "SigCgt":
			v, err := strconv.ParseUint(string(fields[0]), 16, 64)
			if err != nil {
				return Status{}, fmt.Errorf("%w: SigCgt %q", ErrStatusFormat, fields[0])
			}
			st.SigCgt = v
			continue
		default:
			continue
		}
		n, err := strconv.Atoi(string(fields[0]))
		if err != nil || n < 0 {
			return Status{}, fmt.Errorf("%w: %s %q", ErrStatusFormat, key, fields[0])
		}
		*dst = n
	}
	if !haveTGID {
		return Status{}, fmt.Errorf("%w: no Tgid line", ErrStatusFormat)
	}
	if st.NsPID == 0 {
		st.NsPID = pid
	}
	return st, nil
}
