package proc

import (
	"bytes"
	"fmt"

	"github.com/cpuwhy/cpuwhy/internal/sys"
)

// HostCPU is the CPU time of the whole host since boot, from the first
// line of /proc/stat, in clock ticks (TicksPerSecond).
type HostCPU struct {
	// Busy is user, nice, system, irq and softirq time over all CPUs:
	// whatever any process ran, and the interrupts it may be billed for.
	Busy uint64
}

// HostCPU reads the host's CPU time. Only the first line is read: the
// rest of /proc/stat (a line per CPU, every interrupt's count) grows with
// the host and is not needed.
func (f FS) HostCPU() (HostCPU, error) {
	var buf [512]byte
	n, err := sys.ReadProcFile(f.Path("stat"), buf[:])
	if err != nil {
		return HostCPU{}, err
	}
	return ParseHostCPU(buf[:n])
}

// ParseHostCPU parses the first line of /proc/stat, "cpu  user nice
// system idle iowait irq softirq ...", as ParseHostStat parses it; irq
// and softirq (Linux 2.6+) must be there, since Busy counts them.
func ParseHostCPU(data []byte) (HostCPU, error) {
	line, _, _ := bytes.Cut(data, []byte("\n"))
	key, rest, _ := bytes.Cut(line, []byte{' '})
	if string(key) != "cpu" || len(bytes.Fields(rest)) < 7 {
		return HostCPU{}, fmt.Errorf("%w: the first line of stat, %q, is not the cpu line with 7 fields or more", ErrHostFormat, truncate(line))
	}
	t, err := parseCPUTimes(-1, rest)
	if err != nil {
		return HostCPU{}, fmt.Errorf("%w: stat line 1: %w", ErrHostFormat, err)
	}
	// What the host's tasks ran: steal is the hypervisor's.
	return HostCPU{Busy: t.Busy() - t.Steal}, nil
}
