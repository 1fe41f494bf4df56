package sys

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Capability is a Linux capability number (capability.h).
type Capability uint

// The capabilities cpuwhy cares about. CAP_PERFMON and CAP_BPF split out of
// CAP_SYS_ADMIN in Linux 5.8; on older kernels CAP_SYS_ADMIN stands in.
const (
	CapSysPtrace Capability = unix.CAP_SYS_PTRACE
	CapSysAdmin  Capability = unix.CAP_SYS_ADMIN
	CapPerfmon   Capability = unix.CAP_PERFMON
	CapBPF       Capability = unix.CAP_BPF
	// CapIPCLock lifts the limit on memory locked for perf rings.
	CapIPCLock Capability = unix.CAP_IPC_LOCK
)

func (c Capability) String() string {
	switch c {
	case CapSysPtrace:
		return "CAP_SYS_PTRACE"
	case CapSysAdmin:
		return "CAP_SYS_ADMIN"
	case CapPerfmon:
		return "CAP_PERFMON"
	case CapBPF:
		return "CAP_BPF"
	case CapIPCLock:
		return "CAP_IPC_LOCK"
	}
	return fmt.Sprintf("capability %d", uint(c))
}

// CapSet is a bitmap of capabilities.
type CapSet uint64

// Has reports whether c is in the set.
func (s CapSet) Has(c Capability) bool { return s&(1<<c) != 0 }

// Missing lists those of want that are not in s, by name.
func (s CapSet) Missing(want ...Capability) []string {
	var out []string
	for _, c := range want {
		if !s.Has(c) {
			out = append(out, c.String())
		}
	}
	return out
}

// EffectiveCaps returns the effective capability set of the calling thread.
func EffectiveCaps() (CapSet, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0, fmt.Errorf("capget: %w", err)
	}
	return CapSet(uint64(data[0].Effective) | uint64(data[1].Effective)<<32), nil
}
