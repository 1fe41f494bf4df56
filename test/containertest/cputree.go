package containertest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// CPUTree is a chain of nested cgroups in the hierarchy that holds the
// cpu controller (v1, as on hybrid hosts, or v2 with cpu.max), made for
// a test: a Kubernetes pod's tree in small, the limit on any level.
type CPUTree struct {
	Dirs    []string // the cgroups' directories, outermost first
	Paths   []string // their paths in the hierarchy, as /proc/PID/cgroup names them
	Version int
}

// NewCPUTree makes one nested cgroup per limit, outermost first, each
// capped at its limit in cores (0: no limit), with docker's period of
// 100 ms. The test fails when no hierarchy has the cpu controller. The
// cgroups are removed when the test ends, after the cleanups registered
// later (the processes put in them) have run.
func NewCPUTree(tb testing.TB, limits ...float64) *CPUTree {
	tb.Helper()
	mountinfo, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		tb.Fatal(err)
	}
	mounts, err := parseCgroupMounts(mountinfo)
	if err != nil {
		tb.Fatalf("finding cgroup mounts: %v", err)
	}
	var m *cgroupMount
	for i := range mounts {
		if mounts[i].Version == 1 && hasController(mounts[i].Options, "cpu") {
			m = &mounts[i]
		}
	}
	if m == nil {
		for i := range mounts {
			if mounts[i].Version == 2 {
				m = &mounts[i]
			}
		}
	}
	if m == nil {
		tb.Fatal("no cgroup hierarchy with the cpu controller")
	}
	t := &CPUTree{Version: m.Version}
	tb.Cleanup(func() {
		if err := t.remove(); err != nil {
			tb.Error(err)
		}
	})
	dir, path := m.Dir, ""
	for i, limit := range limits {
		name := "l" + strconv.Itoa(i)
		if i == 0 {
			name = "cpuwhy-test-" + randomHex(6)
		}
		dir, path = filepath.Join(dir, name), path+"/"+name
		if err := os.Mkdir(dir, 0o755); err != nil {
			tb.Fatalf("creating cgroup %s: %v", dir, err)
		}
		t.Dirs, t.Paths = append(t.Dirs, dir), append(t.Paths, path)
		if limit > 0 {
			if err := limitCPU([]cgroupMount{*m}, []string{dir}, limit); err != nil {
				tb.Fatal(err)
			}
		} else if m.Version == 2 && !enableCPUController(dir) {
			tb.Fatalf("cannot enable the cpu controller in %s", dir)
		}
	}
	return t
}

// Outweigh gives every cgroup of the tree the largest weight (v1
// cpu.shares 262144, v2 cpu.weight 10000): 256 times a task at nice 0 or
// a default sibling, so that other work on the machine does not keep the
// tree's tasks off the CPU. Nice values do not do that: they weigh tasks
// within their cgroup, not the cgroup against others.
func (t *CPUTree) Outweigh(tb testing.TB) {
	tb.Helper()
	file, weight := "cpu.shares", "262144"
	if t.Version == 2 {
		file, weight = "cpu.weight", "10000"
	}
	for _, dir := range t.Dirs {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(weight), 0o644); err != nil {
			tb.Fatalf("setting %s of %s: %v", file, dir, err)
		}
	}
}

// Join moves process pid, all its threads, into the innermost cgroup.
func (t *CPUTree) Join(pid int) error {
	return joinCgroups(t.Dirs[len(t.Dirs)-1:], pid)
}

// remove removes the cgroups, innermost first, retrying while the kernel
// still counts a dead task in one.
func (t *CPUTree) remove() error {
	var errs []error
	for i := len(t.Dirs) - 1; i >= 0; i-- {
		dir := t.Dirs[i]
		deadline := time.Now().Add(5 * time.Second)
		for {
			err := os.Remove(dir)
			if err == nil || errors.Is(err, os.ErrNotExist) {
				break
			}
			if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
				errs = append(errs, fmt.Errorf("removing cgroup %s: %w", dir, err))
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return errors.Join(errs...)
}
