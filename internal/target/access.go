package target

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/prometheus/procfs"

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
	// HidePID is set when the PID could not even be seen: the proc mount
	// hides other users' processes (its hidepid= value).
	HidePID string
}

func (e *PrivilegeError) Error() string {
	var b strings.Builder
	if e.HidePID != "" {
		fmt.Fprintf(&b, "cannot see PID %d: /proc is mounted with hidepid=%s, which hides other users' processes; missing %s (run as root, or grant it: setcap cap_sys_ptrace,cap_perfmon,cap_bpf+ep cpuwhy); still works: your own processes (cpuwhy top)",
			e.PID, e.HidePID, strings.Join(e.Missing, ", "))
		return b.String()
	}
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
// memory, which stacks and the ptrace fallback need. The kernel answers
// the same question ptrace would, so the answer covers capabilities,
// ownership, Yama and LSMs alike.
func (s *Selector) CheckTrace(pid int) error {
	err := sys.CheckPtraceAccess(pid)
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
	case errors.Is(err, unix.ESRCH):
		return fail(ErrGone, "PID %d exited", pid)
	}
	return fmt.Errorf("checking access to PID %d: %w", pid, err)
}

// hiddenError explains a PID that /proc does not show, when the reason may
// be the mount's hidepid option rather than the process's absence: the
// kernel answers ENOENT alike for both. It returns nil when hidepid is off
// or cpuwhy holds CAP_SYS_PTRACE, which sees through it.
func (s *Selector) hiddenError(pid int) error {
	hide := s.hidePID()
	if hide == "" {
		return nil
	}
	caps, err := sys.EffectiveCaps()
	if err != nil || caps.Has(sys.CapSysPtrace) {
		return nil
	}
	return &PrivilegeError{PID: pid, Missing: caps.Missing(sys.CapSysPtrace), HidePID: hide}
}

// hidePID returns the hidepid= option of the proc mount cpuwhy reads, or ""
// when it shows every process.
func (s *Selector) hidePID() string {
	mounts, err := procfs.GetMounts()
	if err != nil {
		return ""
	}
	root := filepath.Clean(s.procRoot())
	for _, m := range mounts {
		if m.FSType != "proc" || m.MountPoint != root {
			continue
		}
		switch v := m.SuperOptions["hidepid"]; v {
		case "", "0", "off":
			return ""
		default:
			return v
		}
	}
	return ""
}
