package target

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/sys"
	"golang.org/x/sys/unix"
)

// PrivilegeError says that cpuwhy may not trace a process, which
// capabilities it lacks, and what works without them.
type PrivilegeError struct {
	PID     int
	Name    string
	Missing []string // capability names; empty when held but refused anyway
}

func (e *PrivilegeError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cannot trace PID %d (%s): ", e.PID, e.Name)
	if len(e.Missing) > 0 {
		fmt.Fprintf(&b, "missing %s (run as root, or grant it: setcap cap_sys_ptrace,cap_perfmon,cap_bpf+ep cpuwhy)", strings.Join(e.Missing, ", "))
	} else {
		b.WriteString("the kernel refused even with CAP_SYS_PTRACE (a Yama ptrace_scope of 3, an LSM policy, or a non-dumpable process)")
	}
	b.WriteString("; still works: CPU, state and threads of every process (cpuwhy top)")
	return b.String()
}

func (e *PrivilegeError) Unwrap() error { return ErrPrivilege }

// CheckTrace reports whether cpuwhy may trace pid: read its registers and
// memory, which stacks and blocked-syscall views need. It asks the kernel
// the same question ptrace would, by reading /proc/PID/syscall (readable
// only with PTRACE_MODE_ATTACH access), so the answer covers capabilities,
// ownership, Yama and LSMs alike.
func (s *Selector) CheckTrace(pid int) error {
	_, err := sys.ReadProcFile(s.Proc.PIDPath(pid, "syscall"), make([]byte, 256))
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM):
		name := ""
		if p, err := proc.NewScanner(s.Proc).ReadProcess(pid, false); err == nil {
			name = p.Comm
		}
		e := &PrivilegeError{PID: pid, Name: name}
		if caps, err := sys.EffectiveCaps(); err == nil {
			e.Missing = caps.Missing(sys.CapSysPtrace)
		}
		return e
	case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH):
		return fail(ErrGone, "PID %d exited", pid)
	}
	return fmt.Errorf("checking access to PID %d: %w", pid, err)
}
