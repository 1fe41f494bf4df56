package proc

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"

	"github.com/cpuwhy/cpuwhy/internal/sys"
)

// The host's own accounting: /proc/stat (CPU time by mode, per CPU, and
// the tasks runnable now), /proc/softirqs (softirqs raised, by type and
// CPU) and /proc/loadavg. A diagnosis reads them at both ends of its
// window to say whether its target was alone on the machine, and what
// took the CPU when it was not. Each has a pure parser over the file's
// bytes and a thin reader; the files are the kernel's, but a /proc of a
// container or a recorded one is read by the same parsers, which cap
// what they keep.

// MaxCPUs caps the CPUs a host file is parsed for: the largest machines
// Linux runs on have 8192 (CONFIG_NR_CPUS's maximum on x86-64).
const MaxCPUs = 8192

// maxHostFile caps the bytes of one host file read: /proc/stat of a
// 8192-CPU machine is about 1 MiB with its intr line; /proc/softirqs 10
// numbers a CPU.
const maxHostFile = 4 << 20

// ErrHostFormat is returned for a host file that does not parse.
var ErrHostFormat = errors.New("malformed host file")

// CPUTimes is one cpu line of /proc/stat: clock ticks (USER_HZ) spent in
// each mode since boot.
type CPUTimes struct {
	CPU                                                   int // -1 for the "cpu" line: all CPUs together
	User, Nice, System, Idle, IOWait, IRQ, SoftIRQ, Steal uint64
}

// Busy is the time spent doing something: every mode but idle and iowait
// (steal too: the CPU was taken, not idle).
func (c CPUTimes) Busy() uint64 {
	return c.User + c.Nice + c.System + c.IRQ + c.SoftIRQ + c.Steal
}

// Total is the time in every mode.
func (c CPUTimes) Total() uint64 { return c.Busy() + c.Idle + c.IOWait }

// Sub is the time from earlier to c, mode by mode; a counter that went
// back (a CPU taken offline and back) counts zero.
func (c CPUTimes) Sub(earlier CPUTimes) CPUTimes {
	return CPUTimes{CPU: c.CPU, User: sub(c.User, earlier.User), Nice: sub(c.Nice, earlier.Nice), System: sub(c.System, earlier.System),
		Idle: sub(c.Idle, earlier.Idle), IOWait: sub(c.IOWait, earlier.IOWait), IRQ: sub(c.IRQ, earlier.IRQ),
		SoftIRQ: sub(c.SoftIRQ, earlier.SoftIRQ), Steal: sub(c.Steal, earlier.Steal)}
}

// HostStat is what cpuwhy reads of /proc/stat.
type HostStat struct {
	All  CPUTimes   // the "cpu" line
	CPUs []CPUTimes // the "cpuN" lines, in file order (online CPUs)
	// ProcsRunning is the number of tasks running or runnable at the
	// moment of reading, the reader included; ProcsBlocked those in
	// uninterruptible sleep.
	ProcsRunning, ProcsBlocked int
}

// HostStat reads /proc/stat below the root.
func (f FS) HostStat() (HostStat, error) {
	b, err := f.ReadCapped(maxHostFile, "stat")
	if err != nil {
		return HostStat{}, fmt.Errorf("reading the host's stat: %w", err)
	}
	return ParseHostStat(b)
}

// ParseHostStat parses the text of /proc/stat. The "cpu" line is
// required; the kernel writes at least user, nice, system and idle (2.6+
// all eight modes used here), and fields it lacks count zero.
func ParseHostStat(b []byte) (HostStat, error) {
	var s HostStat
	haveAll := false
	for n := 1; len(b) > 0; n++ {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		key, rest, _ := bytes.Cut(line, []byte{' '})
		switch {
		case bytes.Equal(key, []byte("cpu")):
			t, err := parseCPUTimes(-1, rest)
			if err != nil {
				return HostStat{}, fmt.Errorf("%w: stat line %d: %w", ErrHostFormat, n, err)
			}
			s.All, haveAll = t, true
		case bytes.HasPrefix(key, []byte("cpu")):
			cpu, err := atoi(key[3:])
			if err != nil || cpu < 0 || cpu >= MaxCPUs {
				return HostStat{}, fmt.Errorf("%w: stat line %d: cpu %q", ErrHostFormat, n, truncate(key))
			}
			if len(s.CPUs) == MaxCPUs {
				return HostStat{}, fmt.Errorf("%w: over %d cpu lines", ErrHostFormat, MaxCPUs)
			}
			t, err := parseCPUTimes(cpu, rest)
			if err != nil {
				return HostStat{}, fmt.Errorf("%w: stat line %d: %w", ErrHostFormat, n, err)
			}
			s.CPUs = append(s.CPUs, t)
		case bytes.Equal(key, []byte("procs_running")), bytes.Equal(key, []byte("procs_blocked")):
			v, err := atoi(bytes.TrimSpace(rest))
			if err != nil || v < 0 {
				return HostStat{}, fmt.Errorf("%w: stat line %d: %s %q", ErrHostFormat, n, key, truncate(rest))
			}
			if key[6] == 'r' {
				s.ProcsRunning = v
			} else {
				s.ProcsBlocked = v
			}
		}
	}
	if !haveAll {
		return HostStat{}, fmt.Errorf("%w: no cpu line in stat", ErrHostFormat)
	}
	return s, nil
}

func parseCPUTimes(cpu int, rest []byte) (CPUTimes, error) {
	t := CPUTimes{CPU: cpu}
	dst := []*uint64{&t.User, &t.Nice, &t.System, &t.Idle, &t.IOWait, &t.IRQ, &t.SoftIRQ, &t.Steal}
	i := 0
	for _, f := range bytes.Fields(rest) {
		if i == len(dst) {
			break // guest and guest_nice: already in user and nice
		}
		v, err := atou(f)
		if err != nil {
			return CPUTimes{}, fmt.Errorf("cpu field %d %q: %w", i+1, truncate(f), err)
		}
		*dst[i] = v
		i++
	}
	if i < 4 {
		return CPUTimes{}, fmt.Errorf("%d cpu fields, want at least 4", i)
	}
	return t, nil
}

// Softirqs is /proc/softirqs: how many of each softirq each CPU ran since
// boot.
type Softirqs struct {
	CPUs  []int          // the CPU of each column
	Types []SoftirqCount // in file order: HI, TIMER, NET_TX, NET_RX, ...
}

// SoftirqCount is one row of /proc/softirqs.
type SoftirqCount struct {
	Name   string
	PerCPU []uint64 // one per Softirqs.CPUs
}

// Softirqs reads /proc/softirqs below the root.
func (f FS) Softirqs() (Softirqs, error) {
	b, err := f.ReadCapped(maxHostFile, "softirqs")
	if err != nil {
		return Softirqs{}, fmt.Errorf("reading the host's softirqs: %w", err)
	}
	return ParseSoftirqs(b)
}

// maxSoftirqTypes caps the rows kept: the kernel has ten (NR_SOFTIRQS).
const maxSoftirqTypes = 64

// ParseSoftirqs parses the text of /proc/softirqs: a header of CPU names,
// then one row per softirq type with a count per CPU.
func ParseSoftirqs(b []byte) (Softirqs, error) {
	var s Softirqs
	header, b, _ := bytes.Cut(b, []byte{'\n'})
	for _, f := range bytes.Fields(header) {
		cpu, err := atoi(bytes.TrimPrefix(f, []byte("CPU")))
		if !bytes.HasPrefix(f, []byte("CPU")) || err != nil || cpu < 0 || cpu >= MaxCPUs || len(s.CPUs) == MaxCPUs {
			return Softirqs{}, fmt.Errorf("%w: softirqs header %q", ErrHostFormat, truncate(f))
		}
		s.CPUs = append(s.CPUs, cpu)
	}
	if len(s.CPUs) == 0 {
		return Softirqs{}, fmt.Errorf("%w: softirqs header names no CPU", ErrHostFormat)
	}
	for n := 2; len(b) > 0; n++ {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		name, rest, ok := bytes.Cut(line, []byte{':'})
		name = bytes.TrimSpace(name)
		if !ok && len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if !ok || len(name) == 0 || len(name) > 32 {
			return Softirqs{}, fmt.Errorf("%w: softirqs line %d %q", ErrHostFormat, n, truncate(line))
		}
		if len(s.Types) == maxSoftirqTypes {
			return Softirqs{}, fmt.Errorf("%w: over %d softirq types", ErrHostFormat, maxSoftirqTypes)
		}
		row := SoftirqCount{Name: string(name), PerCPU: make([]uint64, 0, len(s.CPUs))}
		for _, f := range bytes.Fields(rest) {
			if len(row.PerCPU) == len(s.CPUs) {
				return Softirqs{}, fmt.Errorf("%w: softirqs line %d: more counts than CPUs", ErrHostFormat, n)
			}
			v, err := atou(f)
			if err != nil {
				return Softirqs{}, fmt.Errorf("%w: softirqs line %d %q: %w", ErrHostFormat, n, truncate(f), err)
			}
			row.PerCPU = append(row.PerCPU, v)
		}
		if len(row.PerCPU) != len(s.CPUs) {
			return Softirqs{}, fmt.Errorf("%w: softirqs line %d: %d counts for %d CPUs", ErrHostFormat, n, len(row.PerCPU), len(s.CPUs))
		}
		s.Types = append(s.Types, row)
	}
	return s, nil
}

// Loadavg is /proc/loadavg: the run queue's length averaged over 1, 5
// and 15 minutes (tasks running, runnable or in uninterruptible sleep).
type Loadavg struct {
	Load1, Load5, Load15 float64
	// Tasks is the kernel's count of tasks (nr_threads: every thread of
	// the host, kernel threads included), the fourth field's total; 0
	// when the line has none.
	Tasks int
}

// Loadavg reads /proc/loadavg below the root.
func (f FS) Loadavg() (Loadavg, error) {
	b, err := f.ReadCapped(4096, "loadavg")
	if err != nil {
		return Loadavg{}, fmt.Errorf("reading the host's loadavg: %w", err)
	}
	return ParseLoadavg(b)
}

// ParseLoadavg parses the text of /proc/loadavg.
func ParseLoadavg(b []byte) (Loadavg, error) {
	f := bytes.Fields(b)
	if len(f) < 3 {
		return Loadavg{}, fmt.Errorf("%w: loadavg %q", ErrHostFormat, truncate(b))
	}
	var v [3]float64
	for i := range v {
		x, err := strconv.ParseFloat(string(f[i]), 64)
		if err != nil || x < 0 || x > 1e9 {
			return Loadavg{}, fmt.Errorf("%w: loadavg %q", ErrHostFormat, truncate(b))
		}
		v[i] = x
	}
	l := Loadavg{Load1: v[0], Load5: v[1], Load15: v[2]}
	if len(f) > 3 {
		if _, total, ok := bytes.Cut(f[3], []byte{'/'}); ok {
			if n, err := strconv.Atoi(string(total)); err == nil && n > 0 {
				l.Tasks = n
			}
		}
	}
	return l, nil
}

// ParseCPUList parses a CPU list as the kernel writes it (Cpus_allowed_list,
// cpuset.cpus): "0-3,8,10-11". It returns the CPUs in increasing order.
func ParseCPUList(b []byte) ([]int, error) {
	cpus, err := sys.ParseCPUList(string(b))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrHostFormat, err)
	}
	return cpus, nil
}

// AllowedCPUs reads the CPUs process pid may run on (its affinity within
// its cpuset: Cpus_allowed_list of its status).
func (f FS) AllowedCPUs(pid int) ([]int, error) {
	b, err := f.ReadCapped(maxStatus, strconv.Itoa(pid), "status")
	if err != nil {
		return nil, fmt.Errorf("reading status of %d: %w", pid, gone(err))
	}
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		if v, ok := bytes.CutPrefix(line, []byte("Cpus_allowed_list:")); ok {
			cpus, err := ParseCPUList(v)
			if err != nil {
				return nil, fmt.Errorf("status of %d: %w", pid, err)
			}
			return cpus, nil
		}
	}
	return nil, fmt.Errorf("status of %d: %w: no Cpus_allowed_list", pid, ErrStatusFormat)
}
