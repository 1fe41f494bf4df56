package containertest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// cgroupMount is one mounted cgroup hierarchy.
type cgroupMount struct {
	Dir     string // mount point
	Version int    // 1 or 2
	Options string // super options: the v1 controllers or name=...
}

// parseCgroupMounts returns the cgroup hierarchies in a mountinfo file,
// one per hierarchy. A hierarchy mounted more than once (bind mounts) is
// reported once, preferring a mount of its root: only there does
// <mount>/docker/<id> show up as /docker/<id> in /proc/PID/cgroup.
func parseCgroupMounts(mountinfo []byte) ([]cgroupMount, error) {
	type candidate struct {
		cgroupMount
		root string
	}
	var order []string
	byDev := map[string]candidate{}
	for i, line := range strings.Split(string(mountinfo), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		// ID parent major:minor root mountpoint options [optional...] - fstype source superoptions
		fields := strings.Fields(line)
		sep := -1
		for j, f := range fields {
			if f == "-" && j >= 6 {
				sep = j
				break
			}
		}
		if sep < 0 || len(fields) < sep+3 {
			return nil, fmt.Errorf("mountinfo line %d: malformed: %q", i+1, line)
		}
		var version int
		switch fields[sep+1] {
		case "cgroup":
			version = 1
		case "cgroup2":
			version = 2
		default:
			continue
		}
		super := ""
		if len(fields) > sep+3 {
			super = fields[sep+3]
		}
		dev, root := fields[2], unescapeMountinfo(fields[3])
		c := candidate{cgroupMount{Dir: unescapeMountinfo(fields[4]), Version: version, Options: super}, root}
		old, seen := byDev[dev]
		if !seen {
			order = append(order, dev)
		}
		if !seen || (old.root != "/" && root == "/") {
			byDev[dev] = c
		}
	}
	mounts := make([]cgroupMount, 0, len(order))
	for _, dev := range order {
		mounts = append(mounts, byDev[dev].cgroupMount)
	}
	return mounts, nil
}

// unescapeMountinfo undoes the kernel's octal escapes (\040 for a space).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// cgroupParent is where docker's cgroupfs driver puts containers.
const cgroupParent = "docker"

// The <mount>/docker parents are shared by every container, including
// those of other test processes running at the same time (go test runs
// packages in parallel, and a test may start a child test binary). A
// lock file serialises creating and removing them, and a marker per
// parent records that containertest made it: only those are removed, and
// only once empty.
func withParentLock(f func() error) error {
	dir := filepath.Join(os.TempDir(), "cpuwhy-containertest")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close() // releases the lock
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("locking %s: %w", lock.Name(), err)
	}
	return f()
}

func parentMarker(parent string) string {
	return filepath.Join(os.TempDir(), "cpuwhy-containertest", "made"+strings.ReplaceAll(parent, "/", "_"))
}

// makeCgroups creates <mount>/docker/<id> in every hierarchy and returns
// the directories made.
func makeCgroups(mounts []cgroupMount, id string) ([]string, error) {
	var dirs []string
	err := withParentLock(func() error {
		for _, m := range mounts {
			dir, err := makeCgroup(m, id)
			if err != nil {
				return err
			}
			dirs = append(dirs, dir)
		}
		return nil
	})
	if err != nil {
		removeCgroups(dirs)
		return nil, err
	}
	return dirs, nil
}

// makeCgroup runs under the parent lock.
func makeCgroup(m cgroupMount, id string) (string, error) {
	parent, err := makeParent(m)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(parent, id)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating cgroup %s: %w", dir, err)
	}
	if m.Version == 1 {
		if err := inheritCpuset(dir); err != nil {
			os.Remove(dir)
			return "", err
		}
	}
	return dir, nil
}

// makeParent creates <mount>/docker unless it exists, recording that
// containertest made it, and returns it. It runs under the parent lock.
func makeParent(m cgroupMount) (string, error) {
	parent := filepath.Join(m.Dir, cgroupParent)
	err := os.Mkdir(parent, 0o755)
	if err == nil {
		if err := os.WriteFile(parentMarker(parent), nil, 0o600); err != nil {
			os.Remove(parent)
			return "", err
		}
	} else if !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("creating cgroup %s: %w", parent, err)
	}
	if m.Version == 1 {
		if err := inheritCpuset(parent); err != nil {
			return "", err
		}
	}
	return parent, nil
}

// removeParent removes a parent containertest made, if it is empty. It
// runs under the parent lock.
func removeParent(parent string) {
	if _, err := os.Stat(parentMarker(parent)); err != nil {
		return // not ours, or already removed
	}
	// Busy: a container is still in it; whoever stops it removes it.
	if os.Remove(parent) == nil || !exists(parent) {
		os.Remove(parentMarker(parent))
	}
}

// ShareCgroupParents is for tests that run a real dockerd with the
// cgroupfs driver. That dockerd puts its containers in the same
// <mount>/docker parents as Start does, creating them when missing and
// never removing them. ShareCgroupParents creates the missing parents
// now, under the parent lock and recorded as containertest's, as Start
// does; release removes those that are empty by then. So whichever test
// finishes last, the dockerd one or a Start container in another test
// process, removes them, and none is removed from under the other.
func ShareCgroupParents() (release func() error, err error) {
	mountinfo, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	mounts, err := parseCgroupMounts(mountinfo)
	if err != nil {
		return nil, fmt.Errorf("finding cgroup mounts: %w", err)
	}
	var parents []string
	release = func() error {
		return withParentLock(func() error {
			for _, p := range parents {
				removeParent(p)
			}
			return nil
		})
	}
	err = withParentLock(func() error {
		for _, m := range mounts {
			parent, err := makeParent(m)
			if err != nil {
				return err
			}
			parents = append(parents, parent)
		}
		return nil
	})
	if err != nil {
		return nil, errors.Join(err, release())
	}
	return release, nil
}

// inheritCpuset copies cpuset.cpus and cpuset.mems from the parent when
// they are empty: a v1 cpuset cgroup starts empty (unless the parent set
// cgroup.clone_children), and no task may join it until both are set.
func inheritCpuset(dir string) error {
	for _, name := range []string{"cpuset.cpus", "cpuset.mems"} {
		cur, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			return nil // not the cpuset hierarchy
		}
		if err != nil {
			return err
		}
		if len(bytes.TrimSpace(cur)) > 0 {
			continue
		}
		val, err := os.ReadFile(filepath.Join(filepath.Dir(dir), name))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name), val, 0o644); err != nil {
			return fmt.Errorf("setting %s of %s: %w", name, dir, err)
		}
	}
	return nil
}

// joinCgroups moves process pid (all its threads) into every directory.
func joinCgroups(dirs []string, pid int) error {
	for _, dir := range dirs {
		f := filepath.Join(dir, "cgroup.procs")
		if err := os.WriteFile(f, []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return fmt.Errorf("moving %d into %s: %w", pid, dir, err)
		}
	}
	return nil
}

// removeCgroups removes the directories, retrying while the kernel still
// counts a dead task in them, and then any docker parent containertest
// made that is now empty.
func removeCgroups(dirs []string) error {
	var errs []error
	for _, dir := range dirs {
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
	err := withParentLock(func() error {
		for _, dir := range dirs {
			removeParent(filepath.Dir(dir))
		}
		return nil
	})
	return errors.Join(append(errs, err)...)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// cfsPeriod is the CFS period Start sets with a quota, docker's default.
const cfsPeriod = 100 * time.Millisecond

// limitCPU caps the cgroups at cpus cores, as docker run --cpus does:
// cpu.cfs_quota_us in a v1 hierarchy with the cpu controller, cpu.max in
// v2 where the controller is enabled. It fails if no hierarchy has the
// controller, since a spinning test program would then run uncapped.
func limitCPU(mounts []cgroupMount, dirs []string, cpus float64) error {
	period := cfsPeriod.Microseconds()
	quota := int64(cpus * float64(period))
	if quota < 1000 {
		return fmt.Errorf("CPU limit %v is below the kernel's minimum quota of 1ms per %v", cpus, cfsPeriod)
	}
	limited := false
	for i, m := range mounts {
		dir := dirs[i]
		switch {
		case m.Version == 1 && hasController(m.Options, "cpu"):
			if err := os.WriteFile(filepath.Join(dir, "cpu.cfs_period_us"), []byte(strconv.FormatInt(period, 10)), 0o644); err != nil {
				return fmt.Errorf("setting the CPU period of %s: %w", dir, err)
			}
			if err := os.WriteFile(filepath.Join(dir, "cpu.cfs_quota_us"), []byte(strconv.FormatInt(quota, 10)), 0o644); err != nil {
				return fmt.Errorf("setting the CPU quota of %s: %w", dir, err)
			}
			limited = true
		case m.Version == 2:
			if !enableCPUController(dir) {
				continue
			}
			val := fmt.Sprintf("%d %d", quota, period)
			if err := os.WriteFile(filepath.Join(dir, "cpu.max"), []byte(val), 0o644); err != nil {
				return fmt.Errorf("setting cpu.max of %s: %w", dir, err)
			}
			limited = true
		}
	}
	if !limited {
		return errors.New("cannot cap the container's CPU: no cgroup hierarchy has the cpu controller")
	}
	return nil
}

// hasController reports whether a v1 hierarchy's super options name the
// controller ("rw,cpu,cpuacct" has cpu; "rw,cpuset" does not).
func hasController(options, controller string) bool {
	for _, o := range strings.Split(options, ",") {
		if o == controller {
			return true
		}
	}
	return false
}

// enableCPUController makes sure a v2 cgroup has cpu.max, enabling the cpu
// controller in its parent when the parent has it to give; on hybrid
// hosts the v2 hierarchy has no controllers at all.
func enableCPUController(dir string) bool {
	if _, err := os.Stat(filepath.Join(dir, "cpu.max")); err == nil {
		return true
	}
	parent := filepath.Dir(dir)
	avail, err := os.ReadFile(filepath.Join(parent, "cgroup.controllers"))
	if err != nil || !slices.Contains(strings.Fields(string(avail)), "cpu") {
		return false
	}
	if err := os.WriteFile(filepath.Join(parent, "cgroup.subtree_control"), []byte("+cpu"), 0o644); err != nil {
		return false
	}
	_, err = os.Stat(filepath.Join(dir, "cpu.max"))
	return err == nil
}
