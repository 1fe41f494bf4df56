package containertest_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cpuwhy/cpuwhy/test/containertest"
	"github.com/cpuwhy/cpuwhy/test/scenario"
)

// testNetNS is the test process's network namespace, read before any test
// runs: later, /proc/self/ns/net may show a container's, because
// inNamespace's setns can land on the main thread, which Go parks rather
// than destroys when its locked goroutine exits.
var testNetNS string

func TestMain(m *testing.M) {
	testNetNS, _ = os.Readlink("/proc/self/ns/net")
	containertest.Main(m)
}

func procPath(pid int, elem ...string) string {
	return filepath.Join(append([]string{"/proc", strconv.Itoa(pid)}, elem...)...)
}

// inNamespace runs f on a thread that has joined pid's namespace of the
// given type. The thread is locked and never unlocked, so the runtime
// discards it instead of reusing it in the wrong namespace.
func inNamespace(t *testing.T, pid int, ns string, flag int, f func() error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open(procPath(pid, "ns", ns), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, flag); err != nil {
			errc <- fmt.Errorf("setns %s of %d: %w", ns, pid, err)
			return
		}
		errc <- f()
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func threadNames(t *testing.T, pid int) []string {
	t.Helper()
	files, err := filepath.Glob(procPath(pid, "task", "*", "comm"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, strings.TrimSpace(string(b)))
	}
	return names
}

// checkContainer asserts what every container must look like from the
// host.
func checkContainer(t *testing.T, c *containertest.Container, wantExe, wantThread string) {
	t.Helper()
	pid := c.HostPID

	status, err := os.ReadFile(procPath(pid, "status"))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
			if f := strings.Fields(rest); len(f) != 2 || f[1] != "1" {
				t.Errorf("NSpid is %q, want the host PID then 1", strings.TrimSpace(rest))
			}
		}
	}

	exe, err := os.Readlink(procPath(pid, "exe"))
	if err != nil || exe != wantExe {
		t.Errorf("exe is %q (%v), want %q", exe, err, wantExe)
	}
	if _, err := os.Stat(wantExe); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s exists on the host (%v); the test needs a path only the container has", wantExe, err)
	}

	cg, err := os.ReadFile(procPath(pid, "cgroup"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(cg)), "\n")
	for _, line := range lines {
		if !strings.HasSuffix(line, ":/docker/"+c.ID) {
			t.Errorf("cgroup line %q is not in /docker/%s", line, c.ID)
		}
	}
	if len(lines) != len(c.CgroupDirs) {
		t.Errorf("%d hierarchies in /proc/%d/cgroup, but %d cgroup dirs made: %q", len(lines), pid, len(c.CgroupDirs), c.CgroupDirs)
	}

	data, err := os.ReadFile(filepath.Join(c.DataRoot, "containers", c.ID, "config.v2.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		ID, Name, Path string
		Config         struct {
			Hostname, Image string
			Labels          map[string]string
		}
		State struct {
			Pid     int
			Running bool
		}
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatalf("config.v2.json: %v", err)
	}
	if cfg.ID != c.ID || cfg.Name != "/"+c.Name || cfg.Path != wantExe ||
		cfg.State.Pid != pid || !cfg.State.Running || cfg.Config.Hostname != c.ID[:12] || cfg.Config.Image == "" {
		t.Errorf("config.v2.json does not describe the container:\n%s", data)
	}

	if wantThread != "" && !slices.Contains(threadNames(t, pid), wantThread) {
		t.Errorf("threads %q, want one named %s", threadNames(t, pid), wantThread)
	}

	for _, f := range []string{".dockerenv", "etc/hostname"} {
		if _, err := os.Stat(procPath(pid, "root", f)); err != nil {
			t.Errorf("container lacks docker's /%s: %v", f, err)
		}
	}

	var hostname string
	inNamespace(t, pid, "uts", unix.CLONE_NEWUTS, func() error {
		var u unix.Utsname
		if err := unix.Uname(&u); err != nil {
			return err
		}
		hostname = unix.ByteSliceToString(u.Nodename[:])
		return nil
	})
	host, _ := os.Hostname()
	if hostname != c.ID[:12] || hostname == host {
		t.Errorf("container hostname %q, host %q; want %q", hostname, host, c.ID[:12])
	}
}

// checkStopped asserts that Stop left nothing behind.
func checkStopped(t *testing.T, c *containertest.Container) {
	t.Helper()
	if _, err := os.Stat(procPath(c.HostPID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("process %d still exists after Stop (%v)", c.HostPID, err)
	}
	for _, dir := range append(c.CgroupDirs, c.RootDir, c.DataRoot) {
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still exists after Stop (%v)", dir, err)
		}
	}
}

func TestBusypollContainer(t *testing.T) {
	t.Parallel()
	p := scenario.Build(t, "busypoll")
	c := containertest.Start(t, containertest.Config{
		Program: p.Path,
		Files:   p.Files,
		Args:    []string{"1701"},
		Env:     []string{"SCENARIO_COUNT_FILE=/tmp/count"},
		Network: true,
	})
	c.WaitReady(t, 10*time.Second)
	checkContainer(t, c, "/opt/vpnserver/vpnserver", "NatThreadMain")

	self := testNetNS
	theirs, err := os.Readlink(procPath(c.HostPID, "ns", "net"))
	if err != nil || theirs == self {
		t.Errorf("container net ns %q (%v), test's %q; want different", theirs, err, self)
	}
	inNamespace(t, c.HostPID, "net", unix.CLONE_NEWNET, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		ifr, err := unix.NewIfreq("lo")
		if err != nil {
			return err
		}
		if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
			return err
		}
		if ifr.Uint16()&unix.IFF_UP == 0 {
			return errors.New("lo is down in the container")
		}
		return nil
	})
	dev, err := os.ReadFile(procPath(c.HostPID, "net", "dev"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(dev), ":"); n != 1 || !strings.Contains(string(dev), "lo:") {
		t.Errorf("container interfaces:\n%s\nwant only lo", dev)
	}

	// The count file is written inside the container: the host finds it
	// under the root directory.
	if err := syscall.Kill(c.HostPID, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	countFile := filepath.Join(c.RootDir, "tmp", "count")
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(countFile)
		if err == nil {
			if !strings.HasPrefix(string(b), "calls=") {
				t.Errorf("count file holds %q", b)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no count file 5s after SIGUSR1: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}

	c.Stop()
	c.Stop() // idempotent
	checkStopped(t, c)
}

func TestIdleContainer(t *testing.T) {
	t.Parallel()
	p := scenario.Build(t, "idle")
	c := containertest.Start(t, containertest.Config{Program: p.Path, Name: "idle-server"})
	c.WaitReady(t, 10*time.Second)
	checkContainer(t, c, "/opt/idle/idle", "acceptor")
	if c.Name != "idle-server" {
		t.Errorf("Name = %q, want idle-server", c.Name)
	}
	self := testNetNS
	theirs, _ := os.Readlink(procPath(c.HostPID, "ns", "net"))
	if theirs != self {
		t.Errorf("container without Network is in net ns %s, test in %s", theirs, self)
	}
	c.Stop()
	checkStopped(t, c)
}

// TestCustomDir checks that Config.Dir moves the program, and that a
// program with symbols and no extra files runs too.
func TestCustomDir(t *testing.T) {
	t.Parallel()
	p := scenario.Build(t, "compute")
	c := containertest.Start(t, containertest.Config{Program: p.Path, Dir: "/srv/app"})
	c.WaitReady(t, 10*time.Second)
	checkContainer(t, c, "/srv/app/compute", "cruncher")
	c.Stop()
	checkStopped(t, c)
}

// TestSharedNetworkAndRootFiles checks the options a second container of
// a pair needs (docker run --network container:A --device ...): it joins
// the first one's network namespace, and gets root files, directories and
// device nodes.
func TestSharedNetworkAndRootFiles(t *testing.T) {
	t.Parallel()
	p := scenario.Build(t, "idle")
	a := containertest.Start(t, containertest.Config{Program: p.Path, Network: true})
	a.WaitReady(t, 10*time.Second)

	conf := filepath.Join(t.TempDir(), "app.conf")
	if err := os.WriteFile(conf, []byte("setting 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := containertest.Start(t, containertest.Config{
		Program:   p.Path,
		NetworkOf: a,
		RootFiles: map[string]string{"/var/lib/app/app.conf": conf},
		Dirs:      []string{"/var/log/app"},
		Devices:   []string{"/dev/null"},
	})
	b.WaitReady(t, 10*time.Second)
	checkContainer(t, b, "/opt/idle/idle", "acceptor")

	nsA, errA := os.Readlink(procPath(a.HostPID, "ns", "net"))
	nsB, errB := os.Readlink(procPath(b.HostPID, "ns", "net"))
	if errA != nil || errB != nil || nsA != nsB || nsA == testNetNS {
		t.Errorf("net ns: a %q (%v), b %q (%v), test %q; want a = b, not the test's", nsA, errA, nsB, errB, testNetNS)
	}
	if got, err := os.ReadFile(procPath(b.HostPID, "root", "var/lib/app/app.conf")); err != nil || string(got) != "setting 1\n" {
		t.Errorf("root file holds %q (%v)", got, err)
	}
	if st, err := os.Stat(procPath(b.HostPID, "root", "var/log/app")); err != nil || !st.IsDir() {
		t.Errorf("directory /var/log/app: %v", err)
	}
	var host, inside unix.Stat_t
	if err := unix.Stat("/dev/null", &host); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(procPath(b.HostPID, "root", "dev/null"), &inside); err != nil {
		t.Fatalf("device /dev/null in the container: %v", err)
	}
	if inside.Rdev != host.Rdev || inside.Mode != host.Mode {
		t.Errorf("container /dev/null rdev %#x mode %o, host's %#x %o", inside.Rdev, inside.Mode, host.Rdev, host.Mode)
	}

	var lo bool
	if err := b.InNetwork(func() error {
		ifaces, err := net.Interfaces()
		for _, i := range ifaces {
			lo = lo || i.Name == "lo"
		}
		if len(ifaces) != 1 {
			return fmt.Errorf("interfaces in the shared namespace: %v", ifaces)
		}
		return err
	}); err != nil || !lo {
		t.Errorf("InNetwork: %v (lo seen: %v)", err, lo)
	}
	b.Stop()
	checkStopped(t, b)
	a.Stop()
	checkStopped(t, a)
}

// TestCPUCap checks Config.CPUs against the scheduler's own accounting: a
// spinning thread capped at half a core gets no more than that.
func TestCPUCap(t *testing.T) {
	t.Parallel()
	p := scenario.Build(t, "compute")
	c := containertest.Start(t, containertest.Config{Program: p.Path, CPUs: 0.5})
	c.WaitReady(t, 10*time.Second)
	// The process's time on the CPU: the sum of its threads' schedstat
	// (the process's own file is its main thread's, which sleeps).
	cpu := func() time.Duration {
		files, err := filepath.Glob(procPath(c.HostPID, "task", "*", "schedstat"))
		if err != nil || len(files) == 0 {
			t.Fatalf("threads of %d: %v", c.HostPID, err)
		}
		var sum time.Duration
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			ns, err := strconv.ParseInt(strings.Fields(string(data))[0], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			sum += time.Duration(ns)
		}
		return sum
	}
	c0, t0 := cpu(), time.Now()
	time.Sleep(2 * time.Second)
	used := float64(cpu()-c0) / float64(time.Since(t0))
	// The quota is enforced per 100 ms period; allow a period of slack.
	if used > 0.58 {
		t.Errorf("capped at 0.5 CPUs, used %.2f", used)
	}
	if used < 0.01 {
		t.Errorf("capped at 0.5 CPUs, used only %.2f: is it running?", used)
	}
	t.Logf("capped at 0.5 CPUs, used %.2f", used)

	// The cap itself, where the kernel reads it.
	var quotas []string
	for _, dir := range c.CgroupDirs {
		for _, f := range []string{"cpu.cfs_quota_us", "cpu.max"} {
			if b, err := os.ReadFile(filepath.Join(dir, f)); err == nil {
				quotas = append(quotas, f+"="+strings.TrimSpace(string(b)))
			}
		}
	}
	if !slices.Contains(quotas, "cpu.cfs_quota_us=50000") && !slices.Contains(quotas, "cpu.max=50000 100000") {
		t.Errorf("cgroup CPU settings %q, want a quota of 50000 per 100000 µs", quotas)
	}
}
