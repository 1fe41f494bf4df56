package container

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/proc"
)

func cpuTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "cpulimit", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// This VM's mountinfo: a hybrid host, cpu and cpuacct each a v1
// hierarchy of their own, and the unified v2 one.
func TestParseCgroupMounts(t *testing.T) {
	ms, err := ParseCgroupMounts(cpuTestdata(t, "mountinfo-hybrid-v1cpu.txt"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, m := range ms {
		got[m.Dir] = m.Root
		if m.Version == 1 && len(m.Controllers) != 1 {
			t.Errorf("%s: controllers %v", m.Dir, m.Controllers)
		}
	}
	for _, dir := range []string{"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup/unified"} {
		if got[dir] != "/" {
			t.Errorf("no %s mounted at its root: %v", dir, got)
		}
	}
	if len(ms) != 3 {
		t.Errorf("%d mounts, want 3 (memory, pids... have no CPU): %+v", len(ms), ms)
	}
	if _, err := ParseCgroupMounts([]byte("1 2 3\n")); !errors.Is(err, ErrMalformed) {
		t.Errorf("malformed: %v", err)
	}
	if got := unescapeMount(`/a\040b\\`); got != `/a b\\` {
		t.Errorf("unescape: %q", got)
	}
}

// A pod-like v2 tree: the limit (0.5 core) is on the pod's slice, the
// container's scope under it has none.
func TestCPULevelsV2Pod(t *testing.T) {
	root := filepath.Join("testdata", "cpulimit", "v2-pod", "fs")
	levels, err := CPULevels([]CgroupMount{{Dir: root, Root: "/", Version: 2}}, cpuTestdata(t, "v2-pod/cgroup"))
	if err != nil {
		t.Fatal(err)
	}
	if len(levels) != 5 {
		t.Fatalf("%d levels, want 5 (scope, pod, qos, kubepods, root): %+v", len(levels), levels)
	}
	own, pod, top := levels[0], levels[1], levels[4]
	if own.Depth != 0 || own.Limit() != 0 || own.Shares != 39 || own.Version != 2 {
		t.Errorf("container's level %+v", own)
	}
	if pod.Depth != 1 || pod.Limit() != 0.5 || pod.Periods != 6000 || pod.Throttled != 4500 || pod.ThrottledTime != 210*time.Second || pod.Usage != 30*time.Second || !pod.HasUsage {
		t.Errorf("pod's level %+v", pod)
	}
	if top.Path != "/" || top.Limit() != 0 {
		t.Errorf("root level %+v", top)
	}
}

// A v1 container with cpu and cpuacct mounted together and its own limit.
func TestCPULevelsV1(t *testing.T) {
	root := filepath.Join("testdata", "cpulimit", "v1-docker", "fs")
	levels, err := CPULevels([]CgroupMount{{Dir: root, Root: "/", Version: 1, Controllers: []string{"cpu", "cpuacct"}}}, cpuTestdata(t, "v1-docker/cgroup"))
	if err != nil {
		t.Fatal(err)
	}
	if len(levels) != 3 {
		t.Fatalf("%d levels: %+v", len(levels), levels)
	}
	l := levels[0]
	if l.Path != "/docker/0247046d3c16" || l.Limit() != 0.2 || l.Period != 100*time.Millisecond || l.Throttled != 280 || l.ThrottledTime != 22*time.Second || l.Usage != 6*time.Second || l.Shares != 512 {
		t.Errorf("%+v", l)
	}
	if levels[1].Limit() != 0 || levels[2].Path != "/" {
		t.Errorf("ancestors %+v", levels[1:])
	}
	// Without a mount holding the process's hierarchy: nothing, no error.
	if l, err := CPULevels(nil, cpuTestdata(t, "v1-docker/cgroup")); l != nil || err != nil {
		t.Errorf("no mounts: %+v, %v", l, err)
	}
	// A mount of part of the hierarchy that does not hold the cgroup.
	if l, err := CPULevels([]CgroupMount{{Dir: root, Root: "/other", Version: 1, Controllers: []string{"cpu"}}}, cpuTestdata(t, "v1-docker/cgroup")); l != nil || err != nil {
		t.Errorf("outside the mount: %+v, %v", l, err)
	}
}

func TestParseCPUFiles(t *testing.T) {
	if q, p, err := ParseCPUMax([]byte("max 100000\n")); q != 0 || p != 100*time.Millisecond || err != nil {
		t.Errorf("max: %v %v %v", q, p, err)
	}
	if q, p, err := ParseCPUMax([]byte("20000 100000\n")); q != 20*time.Millisecond || p != 100*time.Millisecond || err != nil {
		t.Errorf("20000: %v %v %v", q, p, err)
	}
	for _, bad := range []string{"", "1", "x 100", "100 0", "100 99999999999999"} {
		if _, _, err := ParseCPUMax([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("cpu.max %q: %v", bad, err)
		}
	}
	if q, _, err := ParseCFSQuota([]byte("-1\n"), []byte("100000\n")); q != 0 || err != nil {
		t.Errorf("-1: %v %v", q, err)
	}
	if _, _, err := ParseCFSQuota([]byte("-2"), []byte("100000")); !errors.Is(err, ErrMalformed) {
		t.Errorf("-2: %v", err)
	}
	if _, err := ParseCPUStat(cpuTestdata(t, "cpu.stat-bad.txt")); !errors.Is(err, ErrMalformed) {
		t.Errorf("bad cpu.stat: %v", err)
	}
	if _, _, _, err := CgroupPaths([]byte("0::a\n")); !errors.Is(err, ErrMalformed) {
		t.Errorf("relative path: %v", err)
	}
}

// The host's own cgroups, read live: this process's (the root here, or
// wherever the test runs) and its ancestors.
func TestReadCPULevelsLive(t *testing.T) {
	levels, err := ReadCPULevels(proc.FS{}, os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if len(levels) > 0 && levels[len(levels)-1].Path != "/" {
		t.Errorf("the last level is not the root: %+v", levels)
	}
	t.Logf("%+v", levels)
}

func FuzzParseCPUStat(f *testing.F) {
	f.Add([]byte("nr_periods 300\nnr_throttled 280\nthrottled_time 22000000000\n"))
	f.Add([]byte("usage_usec 1\nthrottled_usec 5\n"))
	f.Fuzz(func(t *testing.T, b []byte) { ParseCPUStat(b) })
}

func FuzzParseCPUMax(f *testing.F) {
	f.Add([]byte("max 100000"))
	f.Add([]byte("20000 100000"))
	f.Fuzz(func(t *testing.T, b []byte) {
		q, p, err := ParseCPUMax(b)
		if err == nil && (p <= 0 || q < 0 || q > maxQuota) {
			t.Fatalf("quota %v period %v", q, p)
		}
	})
}

func FuzzParseCgroupMounts(f *testing.F) {
	f.Add(cpuTestdata(f, "mountinfo-hybrid-v1cpu.txt"))
	f.Fuzz(func(t *testing.T, b []byte) { ParseCgroupMounts(b) })
}

func FuzzCgroupPaths(f *testing.F) {
	f.Add(cpuTestdata(f, "v1-docker/cgroup"))
	f.Add(cpuTestdata(f, "v2-pod/cgroup"))
	f.Fuzz(func(t *testing.T, b []byte) { CgroupPaths(b) })
}
