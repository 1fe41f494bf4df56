package proc

import (
	"bytes"
	"fmt"
	"strconv"

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

// ParseHostCPU parses the first line of /proc/stat:
// "cpu  user nice system idle iowait irq softirq ...".
func ParseHostCPU(data []byte) (HostCPU, error) {
	line, _, _ := bytes.Cut(data, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 8 || string(f[0]) != "cpu" {
		return HostCPU{}, fmt.Errorf("parsing /proc/stat: first line %q is not the cpu line", line)
	}
	var v [7]uint64
	for i := range v {
		n, err := strconv.ParseUint(string(f[i+1]), 10, 64)
		if err != nil {
			return HostCPU{}, fmt.Errorf("parsing /proc/stat: field %d: %w", i+1, err)
		}
		v[i] = n
	}
	const user, nice, system, irq, softirq = 0, 1, 2, 5, 6
	return HostCPU{Busy: v[user] + v[nice] + v[system] + v[irq] + v[softirq]}, nil
}
