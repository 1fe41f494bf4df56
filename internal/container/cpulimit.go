package container

import (
	"bytes"
	"fmt"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/proc"
)

// The CPU controller of a process's cgroups: the quota the kernel's CFS
// bandwidth control enforces (cgroup v1 cpu.cfs_quota_us and
// cpu.cfs_period_us, v2 cpu.max), how often it throttled the group
// (cpu.stat), its usage and its weight. A limit may sit on any ancestor of
// the process's own cgroup: a Kubernetes pod's is on the pod's cgroup,
// above its containers'. Parsers take the files' bytes; CPULevels reads
// them from a cgroup tree given by its mount points, so tests read trees
// under testdata.

// CPULevel is one cgroup, the process's own or an ancestor, as its CPU
// controller accounts it at one moment.
type CPULevel struct {
	// Path is the cgroup's path in its hierarchy ("/" for the root);
	// Depth its distance from the process's own cgroup (0: its own).
	Path    string `json:"path"`
	Depth   int    `json:"depth"`
	Version int    `json:"version"` // 1 or 2
	// Quota is the CPU time the group may use per Period; 0: no limit.
	Quota  time.Duration `json:"quota_ns,omitempty"`
	Period time.Duration `json:"period_ns,omitempty"`
	// Periods is the periods in which the group had tasks to run since
	// it was made (nr_periods), Throttled those in which it used its quota
	// and was stopped (nr_throttled), ThrottledTime the time its run
	// queues spent throttled, summed over CPUs.
	Periods       uint64        `json:"nr_periods"`
	Throttled     uint64        `json:"nr_throttled"`
	ThrottledTime time.Duration `json:"throttled_ns"`
	// Usage is the CPU time the group used since it was made (v2
	// usage_usec, v1 cpuacct.usage); HasUsage says whether it was read.
	Usage    time.Duration `json:"usage_ns,omitempty"`
	HasUsage bool          `json:"has_usage,omitempty"`
	// Shares is the group's weight against its siblings: v1 cpu.shares
	// (default 1024), v2 cpu.weight (default 100).
	Shares uint64 `json:"shares,omitempty"`
}

// Limit is the group's quota in cores (quota over period); 0: none.
func (l CPULevel) Limit() float64 {
	if l.Quota <= 0 || l.Period <= 0 {
		return 0
	}
	return float64(l.Quota) / float64(l.Period)
}

// CgroupMount is a mounted cgroup hierarchy with the CPU controller, or
// with CPU accounting.
type CgroupMount struct {
	Dir     string // mount point
	Root    string // the hierarchy's path mounted there ("/" for all of it)
	Version int
	// Controllers are a v1 hierarchy's controllers (its super options);
	// empty for v2, whose controllers are per cgroup.
	Controllers []string
}

// maxMountinfo caps the mountinfo read: a host with thousands of
// containers has thousands of mounts of a couple of hundred bytes.
const maxMountinfo = 16 << 20

// ParseCgroupMounts returns the cgroup hierarchies of a mountinfo file:
// the v1 ones with the cpu or cpuacct controller, and the v2 one. A
// hierarchy mounted twice is kept once, preferring the mount of its root.
func ParseCgroupMounts(mountinfo []byte) ([]CgroupMount, error) {
	if len(mountinfo) > maxMountinfo {
		return nil, fmt.Errorf("mountinfo of %d bytes: %w", len(mountinfo), ErrTooLarge)
	}
	var out []CgroupMount
	for n := 1; len(mountinfo) > 0; n++ {
		var line []byte
		line, mountinfo, _ = bytes.Cut(mountinfo, []byte{'\n'})
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		// ID parent major:minor root mountpoint options [optional...] - fstype source superoptions
		fields := strings.Fields(string(line))
		sep := -1
		for j, f := range fields {
			if f == "-" && j >= 6 {
				sep = j
				break
			}
		}
		if sep < 0 || len(fields) < sep+4 {
			return nil, fmt.Errorf("mountinfo line %d %q: %w", n, truncate(line), ErrMalformed)
		}
		m := CgroupMount{Dir: unescapeMount(fields[4]), Root: unescapeMount(fields[3])}
		switch fields[sep+1] {
		case "cgroup":
			m.Version = 1
			for _, o := range strings.Split(fields[sep+3], ",") {
				if o == "cpu" || o == "cpuacct" {
					m.Controllers = append(m.Controllers, o)
				}
			}
			if len(m.Controllers) == 0 {
				continue
			}
		case "cgroup2":
			m.Version = 2
		default:
			continue
		}
		replaced := false
		for i, o := range out {
			if o.Version == m.Version && strings.Join(o.Controllers, ",") == strings.Join(m.Controllers, ",") {
				if o.Root != "/" && m.Root == "/" {
					out[i] = m
				}
				replaced = true
			}
		}
		if !replaced {
			out = append(out, m)
		}
	}
	return out, nil
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// CgroupPaths returns, from the bytes of /proc/PID/cgroup, the process's
// path in the v1 hierarchies holding the cpu and cpuacct controllers, and
// in the v2 hierarchy ("" where it has none).
func CgroupPaths(data []byte) (cpu, cpuacct, unified string, err error) {
	if len(data) > maxCgroupFile {
		return "", "", "", fmt.Errorf("cgroup file of %d bytes: %w", len(data), ErrTooLarge)
	}
	for n := 1; len(data) > 0; n++ {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte{'\n'})
		if len(line) == 0 {
			continue
		}
		id, rest, ok1 := bytes.Cut(line, []byte{':'})
		ctrls, p, ok2 := bytes.Cut(rest, []byte{':'})
		if !ok1 || !ok2 || len(p) == 0 || p[0] != '/' {
			return "", "", "", fmt.Errorf("cgroup line %d %q: %w", n, truncate(line), ErrMalformed)
		}
		if string(id) == "0" && len(ctrls) == 0 {
			unified = string(p)
			continue
		}
		for _, c := range strings.Split(string(ctrls), ",") {
			switch c {
			case "cpu":
				cpu = string(p)
			case "cpuacct":
				cpuacct = string(p)
			}
		}
	}
	return cpu, cpuacct, unified, nil
}

// CPUStat is what cpu.stat holds of bandwidth control and usage.
type CPUStat struct {
	Periods, Throttled uint64
	ThrottledTime      time.Duration
	Usage              time.Duration // v2 only (usage_usec)
	HasUsage           bool
}

// ParseCPUStat parses cpu.stat of either version: v1 writes
// throttled_time in nanoseconds, v2 throttled_usec and usage_usec in
// microseconds. Unknown keys are skipped.
func ParseCPUStat(b []byte) (CPUStat, error) {
	var s CPUStat
	for n := 1; len(b) > 0; n++ {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		f := bytes.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 {
			return CPUStat{}, fmt.Errorf("cpu.stat line %d %q: %w", n, truncate(line), ErrMalformed)
		}
		v, err := strconv.ParseUint(string(f[1]), 10, 64)
		if err != nil || v > 1<<62 {
			return CPUStat{}, fmt.Errorf("cpu.stat line %d %q: %w", n, truncate(line), ErrMalformed)
		}
		switch string(f[0]) {
		case "nr_periods":
			s.Periods = v
		case "nr_throttled":
			s.Throttled = v
		case "throttled_time":
			s.ThrottledTime = time.Duration(v)
		case "throttled_usec":
			s.ThrottledTime = time.Duration(v) * time.Microsecond
		case "usage_usec":
			s.Usage, s.HasUsage = time.Duration(v)*time.Microsecond, true
		}
	}
	return s, nil
}

// maxQuota bounds quotas and periods read (cgroup v1 caps the period at
// one second and the quota far below this).
const maxQuota = time.Hour

// ParseCPUMax parses v2 cpu.max: "QUOTA PERIOD" in microseconds, QUOTA
// "max" for no limit (quota 0 returned).
func ParseCPUMax(b []byte) (quota, period time.Duration, err error) {
	f := bytes.Fields(b)
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("cpu.max %q: %w", truncate(b), ErrMalformed)
	}
	p, err := strconv.ParseUint(string(f[1]), 10, 64)
	if err != nil || p == 0 || time.Duration(p)*time.Microsecond > maxQuota {
		return 0, 0, fmt.Errorf("cpu.max %q: %w", truncate(b), ErrMalformed)
	}
	period = time.Duration(p) * time.Microsecond
	if string(f[0]) == "max" {
		return 0, period, nil
	}
	q, err := strconv.ParseUint(string(f[0]), 10, 64)
	if err != nil || time.Duration(q)*time.Microsecond > maxQuota {
		return 0, 0, fmt.Errorf("cpu.max %q: %w", truncate(b), ErrMalformed)
	}
	return time.Duration(q) * time.Microsecond, period, nil
}

// ParseCFSQuota parses v1 cpu.cfs_quota_us and cpu.cfs_period_us: a
// quota of -1 is no limit (quota 0 returned).
func ParseCFSQuota(quotaUs, periodUs []byte) (quota, period time.Duration, err error) {
	q, err1 := strconv.ParseInt(string(bytes.TrimSpace(quotaUs)), 10, 64)
	p, err2 := strconv.ParseUint(string(bytes.TrimSpace(periodUs)), 10, 64)
	if err1 != nil || err2 != nil || p == 0 || time.Duration(p)*time.Microsecond > maxQuota || q < -1 || time.Duration(q)*time.Microsecond > maxQuota {
		return 0, 0, fmt.Errorf("cfs quota %q period %q: %w", truncate(quotaUs), truncate(periodUs), ErrMalformed)
	}
	period = time.Duration(p) * time.Microsecond
	if q <= 0 {
		return 0, period, nil
	}
	return time.Duration(q) * time.Microsecond, period, nil
}

// maxLevels caps the cgroups read up from a process's own: real trees are
// under ten deep.
const maxLevels = 32

// maxCgroupValue caps one small cgroup file read.
const maxCgroupValue = 4 << 10

// CPULevels reads the CPU controller of the cgroup a process is in (the
// bytes of its /proc/PID/cgroup) and of each ancestor up to the root of
// the hierarchy, from the mounts given (ParseCgroupMounts). It uses the
// v1 cpu hierarchy when the process has one (hybrid hosts keep it there),
// else v2 with cpu.max. Levels are the process's own first. No mount with
// the controller, or a cgroup outside the mounted part: nil, nil.
func CPULevels(mounts []CgroupMount, cgroupFile []byte) ([]CPULevel, error) {
	cpuPath, acctPath, unified, err := CgroupPaths(cgroupFile)
	if err != nil {
		return nil, err
	}
	var cpuMount, acctMount, v2 *CgroupMount
	for i := range mounts {
		m := &mounts[i]
		for _, c := range m.Controllers {
			switch c {
			case "cpu":
				cpuMount = m
			case "cpuacct":
				acctMount = m
			}
		}
		if m.Version == 2 {
			v2 = m
		}
	}
	switch {
	case cpuPath != "" && cpuMount != nil:
		return levelsV1(cpuMount, cpuPath, acctMount, acctPath)
	case unified != "" && v2 != nil:
		return levelsV2(v2, unified)
	}
	return nil, nil
}

// dirOf is the directory of cgroup p under mount m, or "" when p is not
// under the part of the hierarchy mounted there or is not a clean path.
func dirOf(m *CgroupMount, p string) string {
	if p != path.Clean(p) || !strings.HasPrefix(p, "/") {
		return ""
	}
	rel := p
	if m.Root != "/" {
		if p != m.Root && !strings.HasPrefix(p, m.Root+"/") {
			return ""
		}
		rel = strings.TrimPrefix(p, m.Root)
	}
	return filepath.Join(m.Dir, filepath.FromSlash(rel))
}

// up returns p and each ancestor, up to the mount's root.
func up(m *CgroupMount, p string) []string {
	var out []string
	for len(out) < maxLevels {
		out = append(out, p)
		if p == "/" || p == m.Root {
			break
		}
		p = path.Dir(p)
	}
	return out
}

func readValue(dir, name string) ([]byte, error) {
	return proc.ReadFileCapped(filepath.Join(dir, name), maxCgroupValue)
}

func levelsV1(cpu *CgroupMount, p string, acct *CgroupMount, acctPath string) ([]CPULevel, error) {
	var out []CPULevel
	for depth, lp := range up(cpu, p) {
		dir := dirOf(cpu, lp)
		if dir == "" {
			return nil, nil
		}
		l := CPULevel{Path: lp, Depth: depth, Version: 1}
		q, errQ := readValue(dir, "cpu.cfs_quota_us")
		per, errP := readValue(dir, "cpu.cfs_period_us")
		if errQ == nil && errP == nil {
			quota, period, err := ParseCFSQuota(q, per)
			if err != nil {
				return nil, fmt.Errorf("cgroup %s: %w", lp, err)
			}
			l.Quota, l.Period = quota, period
		}
		if b, err := readValue(dir, "cpu.stat"); err == nil {
			st, err := ParseCPUStat(b)
			if err != nil {
				return nil, fmt.Errorf("cgroup %s: %w", lp, err)
			}
			l.Periods, l.Throttled, l.ThrottledTime = st.Periods, st.Throttled, st.ThrottledTime
		}
		if b, err := readValue(dir, "cpu.shares"); err == nil {
			l.Shares, _ = strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64)
		}
		// cpuacct counts the same tasks when its hierarchy holds the
		// same path (co-mounted, or mounted apart but kept in step, as
		// container engines do).
		if acct != nil && acctPath == p {
			if d := dirOf(acct, lp); d != "" {
				if b, err := readValue(d, "cpuacct.usage"); err == nil {
					if v, err := strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64); err == nil {
						l.Usage, l.HasUsage = time.Duration(v), true
					}
				}
			}
		}
		out = append(out, l)
	}
	return out, nil
}

func levelsV2(m *CgroupMount, p string) ([]CPULevel, error) {
	var out []CPULevel
	for depth, lp := range up(m, p) {
		dir := dirOf(m, lp)
		if dir == "" {
			return nil, nil
		}
		l := CPULevel{Path: lp, Depth: depth, Version: 2}
		if b, err := readValue(dir, "cpu.max"); err == nil {
			quota, period, err := ParseCPUMax(b)
			if err != nil {
				return nil, fmt.Errorf("cgroup %s: %w", lp, err)
			}
			l.Quota, l.Period = quota, period
		}
		if b, err := readValue(dir, "cpu.stat"); err == nil {
			st, err := ParseCPUStat(b)
			if err != nil {
				return nil, fmt.Errorf("cgroup %s: %w", lp, err)
			}
			l.Periods, l.Throttled, l.ThrottledTime, l.Usage, l.HasUsage = st.Periods, st.Throttled, st.ThrottledTime, st.Usage, st.HasUsage
		}
		if b, err := readValue(dir, "cpu.weight"); err == nil {
			l.Shares, _ = strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64)
		}
		out = append(out, l)
	}
	return out, nil
}

// ReadCPULevels reads the CPU controller of process pid's cgroups and
// their ancestors, on the host whose /proc is pfs (its mountinfo says
// where the hierarchies are mounted).
func ReadCPULevels(pfs proc.FS, pid int) ([]CPULevel, error) {
	mi, err := pfs.ReadCapped(maxMountinfo, "self", "mountinfo")
	if err != nil {
		return nil, fmt.Errorf("reading where cgroups are mounted: %w", err)
	}
	mounts, err := ParseCgroupMounts(mi)
	if err != nil {
		return nil, err
	}
	cg, err := pfs.ReadCapped(maxCgroupFile, strconv.Itoa(pid), "cgroup")
	if err != nil {
		return nil, fmt.Errorf("reading the cgroups of %d: %w", pid, err)
	}
	return CPULevels(mounts, cg)
}
