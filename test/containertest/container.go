package containertest

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cpuwhy/cpuwhy/test/privtest"
)

// Config describes the container to start.
type Config struct {
	Program string            // host path of the binary
	Files   map[string]string // extra files beside it in the container (basename -> host path)
	Dir     string            // directory in the container, default "/opt/" + base name of Program
	Args    []string          // arguments after argv[0]
	Env     []string          // added to a docker-like PATH, HOSTNAME and HOME
	Name    string            // container name, default "cpuwhy-test-<random>"
	Network bool              // new network namespace with only loopback up
	// NetworkOf joins the network namespace of another container made
	// by Start instead of making one, as docker run --network
	// container:NAME does. It excludes Network.
	NetworkOf *Container

	// RootFiles are more files, at absolute paths in the container
	// (container path -> host path), for programs that read data from
	// fixed paths (a configuration under /var/lib). Their parent
	// directories are made.
	RootFiles map[string]string
	// Dirs are empty directories made in the container (mode 0755), for
	// programs that write below fixed paths (/var/log/NAME).
	Dirs []string
	// Devices are host device nodes made again at the same paths in the
	// container (docker run --device): /dev/net/tun for a VPN client.
	Devices []string
	// CPUs caps the CPU the container may use, in cores (docker run
	// --cpus), through the cpu controller of the cgroups; 0 leaves it
	// uncapped. A test whose program spins on a machine shared with
	// others caps it.
	CPUs float64

	Image  string            // image name in config.v2.json, default "cpuwhy-test/<base name>:latest"
	Labels map[string]string // labels in config.v2.json
}

// Container is a running container made by Start.
type Container struct {
	HostPID    int      // PID of the program on the host
	ID         string   // 64 hex digits
	Name       string   // without docker's leading slash
	DataRoot   string   // docker-like data root holding containers/<ID>/config.v2.json
	RootDir    string   // host path of the container's root directory
	Path       string   // program path inside the container
	CgroupDirs []string // host paths of the container's cgroup, one per hierarchy

	tb       testing.TB
	base     string // temporary directory holding RootDir and DataRoot
	cmd      *exec.Cmd
	stdout   *os.File
	stderr   lockedBuffer
	stopOnce sync.Once

	mu     sync.Mutex
	output bytes.Buffer  // stdout so far
	ready  chan struct{} // closed on the "ready" line
	eof    chan struct{} // closed when stdout ends
}

// ConfigPath is the host path of the container's config.v2.json.
func (c *Container) ConfigPath() string {
	return filepath.Join(c.DataRoot, "containers", c.ID, "config.v2.json")
}

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Start starts cfg.Program in a new container and returns once the
// program has been exec'd as PID 1 of its namespace. It fails the test
// on any error, and skips it (see privtest) when the host cannot make
// containers at all. Stop runs when the test ends.
func Start(tb testing.TB, cfg Config) *Container {
	tb.Helper()
	if cfg.Program == "" {
		tb.Fatal("containertest: Config.Program is empty")
	}
	base := filepath.Base(cfg.Program)
	if cfg.Dir == "" {
		cfg.Dir = "/opt/" + base
	}
	if !filepath.IsAbs(cfg.Dir) {
		tb.Fatalf("containertest: Config.Dir %q is not absolute", cfg.Dir)
	}
	if cfg.Name == "" {
		cfg.Name = "cpuwhy-test-" + randomHex(4)
	}
	if cfg.Image == "" {
		cfg.Image = "cpuwhy-test/" + base + ":latest"
	}
	if cfg.Network && cfg.NetworkOf != nil {
		tb.Fatal("containertest: Config.Network and Config.NetworkOf exclude each other")
	}
	if cfg.CPUs < 0 {
		tb.Fatalf("containertest: Config.CPUs %v is negative", cfg.CPUs)
	}

	mountinfo, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		tb.Fatalf("reading mountinfo: %v", err)
	}
	mounts, err := parseCgroupMounts(mountinfo)
	if err != nil {
		tb.Fatalf("finding cgroup mounts: %v", err)
	}
	if len(mounts) == 0 {
		privtest.Require(tb, "no cgroup filesystem is mounted")
	}

	tmp, err := os.MkdirTemp("", "cpuwhy-container-")
	if err != nil {
		tb.Fatal(err)
	}
	c := &Container{
		ID:       randomHex(32),
		Name:     cfg.Name,
		DataRoot: filepath.Join(tmp, "docker-data"),
		RootDir:  filepath.Join(tmp, "rootfs"),
		Path:     filepath.Join(cfg.Dir, base),
		tb:       tb,
		base:     tmp,
		ready:    make(chan struct{}),
		eof:      make(chan struct{}),
	}
	// From here on every early return leaves cleanup to Stop.
	tb.Cleanup(c.Stop)

	hostname := c.ID[:12]
	if err := populateRoot(c.RootDir, cfg, hostname); err != nil {
		tb.Fatalf("building the container root: %v", err)
	}

	c.CgroupDirs, err = makeCgroups(mounts, c.ID)
	if err != nil {
		if errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EROFS) {
			privtest.Require(tb, fmt.Sprintf("cannot create cgroups: %v", err))
		}
		tb.Fatal(err)
	}
	if cfg.CPUs > 0 {
		if err := limitCPU(mounts, c.CgroupDirs, cfg.CPUs); err != nil {
			tb.Fatal(err)
		}
	}

	spec, err := json.Marshal(initSpec{
		Root:     c.RootDir,
		Path:     c.Path,
		Args:     append([]string{c.Path}, cfg.Args...),
		Env:      append([]string{"PATH=" + defaultPath, "HOSTNAME=" + hostname, "HOME=/root"}, cfg.Env...),
		Hostname: hostname,
		Network:  cfg.Network,
		JoinNet:  cfg.NetworkOf != nil,
	})
	if err != nil {
		tb.Fatal(err)
	}

	syncR, syncW, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	defer syncW.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	defer errR.Close()
	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	c.stdout = stdoutR

	flags := syscall.CLONE_NEWPID | syscall.CLONE_NEWNS | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC
	if cfg.Network {
		flags |= syscall.CLONE_NEWNET
	}
	// -test.run=^$ keeps a test binary whose TestMain forgot Main from
	// running the whole suite again inside the container.
	c.cmd = exec.Command("/proc/self/exe", "-test.run=^$")
	c.cmd.Env = []string{envInit + "=" + string(spec)}
	c.cmd.Stdout = stdoutW
	c.cmd.Stderr = &c.stderr
	c.cmd.ExtraFiles = []*os.File{syncR, errW} // fds 3 and 4
	if cfg.NetworkOf != nil {
		// Opened here, on the host, and inherited as fd 5: the init step
		// joins it before exec.
		netns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", cfg.NetworkOf.HostPID))
		if err != nil {
			tb.Fatalf("opening the network namespace of container %s: %v", cfg.NetworkOf.Name, err)
		}
		defer netns.Close()
		c.cmd.ExtraFiles = append(c.cmd.ExtraFiles, netns)
	}
	c.cmd.WaitDelay = 5 * time.Second
	c.cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: uintptr(flags),
		// If the test binary dies without cleaning up, so does the
		// program.
		Pdeathsig: syscall.SIGKILL,
	}
	err = startOnLockedThread(c.cmd)
	syncR.Close()
	errW.Close()
	stdoutW.Close()
	if err != nil {
		c.cmd = nil
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL) {
			privtest.Require(tb, fmt.Sprintf("cannot create namespaces: %v", err))
		}
		tb.Fatalf("starting the container init step: %v", err)
	}
	c.HostPID = c.cmd.Process.Pid
	go c.readStdout()

	if err := joinCgroups(c.CgroupDirs, c.HostPID); err != nil {
		tb.Fatal(err)
	}
	if err := c.writeConfig(cfg, time.Now()); err != nil {
		tb.Fatalf("writing config.v2.json: %v", err)
	}
	if _, err := syncW.Write([]byte{1}); err != nil {
		tb.Fatalf("releasing the container init step: %v; stderr: %s", err, c.stderr.String())
	}

	// The error pipe is close-on-exec in the init step: EOF with no data
	// means the exec happened (or the step died; the exe check tells).
	errR.SetReadDeadline(time.Now().Add(10 * time.Second))
	msg, err := io.ReadAll(errR)
	if err != nil {
		tb.Fatalf("waiting for the container init step: %v; stderr: %s", err, c.stderr.String())
	}
	if len(msg) > 0 {
		tb.Fatalf("container init step: %s", msg)
	}
	if err := c.waitExe(time.Second); err != nil {
		tb.Fatalf("%v (does TestMain call containertest.Main?); stderr: %s", err, c.stderr.String())
	}
	return c
}

// waitExe waits until /proc/PID/exe names the program.
func (c *Container) waitExe(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", c.HostPID))
		if err == nil && exe == c.Path {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("container process %d runs %q (%v), want %s", c.HostPID, exe, err, c.Path)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (c *Container) readStdout() {
	defer close(c.eof)
	r := bufio.NewReader(c.stdout)
	for {
		line, err := r.ReadString('\n')
		c.mu.Lock()
		c.output.WriteString(line)
		c.mu.Unlock()
		if line == "ready\n" {
			select {
			case <-c.ready:
			default:
				close(c.ready)
			}
		}
		if err != nil {
			return
		}
	}
}

// Output returns what the program has written to stdout so far.
func (c *Container) Output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.output.String()
}

// WaitReady waits for the program to print the line "ready", failing the
// test if it exits first or takes longer than timeout.
func (c *Container) WaitReady(tb testing.TB, timeout time.Duration) {
	tb.Helper()
	select {
	case <-c.ready:
		return
	case <-c.eof:
		select {
		case <-c.ready:
			return
		default:
		}
		tb.Fatalf("container %s exited before it was ready; stdout: %q; stderr: %q", c.Name, c.Output(), c.stderr.String())
	case <-time.After(timeout):
		tb.Fatalf("container %s not ready after %v; stdout: %q; stderr: %q", c.Name, timeout, c.Output(), c.stderr.String())
	}
}

// InNetwork runs f on an OS thread of the calling process that has joined
// the container's network namespace, for tests that talk to the
// container over its own loopback or make sockets there. Sockets made in
// f stay in that namespace when used from other threads afterwards. The
// thread is never handed back to the Go scheduler: it ends with f.
func (c *Container) InNetwork(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		// Locked and never unlocked: the runtime ends the thread when
		// this goroutine returns, rather than reuse it in the wrong
		// namespace.
		runtime.LockOSThread()
		errc <- func() error {
			ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", c.HostPID))
			if err != nil {
				return fmt.Errorf("opening the network namespace of container %s: %w", c.Name, err)
			}
			defer ns.Close()
			if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
				return fmt.Errorf("joining the network namespace of container %s: %w", c.Name, err)
			}
			return f()
		}()
	}()
	return <-errc
}

// Stop kills the program, reaps it and removes its cgroups, root and data
// root. It is idempotent, and registered with Cleanup by Start.
func (c *Container) Stop() {
	c.stopOnce.Do(func() {
		var errs []error
		if c.cmd != nil {
			// PID 1 of a namespace ignores signals it has no handler
			// for, except SIGKILL from outside.
			c.cmd.Process.Kill()
			c.cmd.Wait() // reports the kill; nothing to learn from it
			// The kernel kills the rest of the namespace with its init.
		}
		if c.stdout != nil {
			c.stdout.Close()
		}
		if err := removeCgroups(c.CgroupDirs); err != nil {
			errs = append(errs, err)
		}
		if err := os.RemoveAll(c.base); err != nil {
			errs = append(errs, err)
		}
		if err := errors.Join(errs...); err != nil {
			c.tb.Errorf("stopping container %s: %v", c.Name, err)
		}
	})
}

// dockerConfig is the part of docker's config.v2.json that tools read to
// name a container. Field names and nesting follow docker's own file.
type dockerConfig struct {
	ID      string    `json:"ID"`
	Created time.Time `json:"Created"`
	Path    string    `json:"Path"`
	Args    []string  `json:"Args"`
	Config  struct {
		Hostname   string            `json:"Hostname"`
		Env        []string          `json:"Env"`
		Cmd        []string          `json:"Cmd"`
		Image      string            `json:"Image"`
		WorkingDir string            `json:"WorkingDir"`
		Labels     map[string]string `json:"Labels"`
	} `json:"Config"`
	State struct {
		Running    bool      `json:"Running"`
		Paused     bool      `json:"Paused"`
		Restarting bool      `json:"Restarting"`
		OOMKilled  bool      `json:"OOMKilled"`
		Dead       bool      `json:"Dead"`
		Pid        int       `json:"Pid"`
		ExitCode   int       `json:"ExitCode"`
		Error      string    `json:"Error"`
		StartedAt  time.Time `json:"StartedAt"`
		FinishedAt time.Time `json:"FinishedAt"`
	} `json:"State"`
	Image  string `json:"Image"`
	Name   string `json:"Name"`
	Driver string `json:"Driver"`
}

func (c *Container) writeConfig(cfg Config, started time.Time) error {
	var d dockerConfig
	d.ID = c.ID
	d.Created = started.UTC()
	d.Path = c.Path
	d.Args = cfg.Args
	if d.Args == nil {
		d.Args = []string{}
	}
	d.Config.Hostname = c.ID[:12]
	d.Config.Env = append([]string{"PATH=" + defaultPath}, cfg.Env...)
	d.Config.Cmd = append([]string{c.Path}, cfg.Args...)
	d.Config.Image = cfg.Image
	d.Config.WorkingDir = "/"
	d.Config.Labels = cfg.Labels
	if d.Config.Labels == nil {
		d.Config.Labels = map[string]string{}
	}
	d.State.Running = true
	d.State.Pid = c.HostPID
	d.State.StartedAt = started.UTC()
	imageID := sha256.Sum256([]byte(cfg.Image))
	d.Image = "sha256:" + hex.EncodeToString(imageID[:])
	d.Name = "/" + c.Name
	d.Driver = "overlay2"

	data, err := json.Marshal(d)
	if err != nil {
		return err
	}
	dir := filepath.Join(c.DataRoot, "containers", c.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "config.v2.json"), data, 0o600)
}

// The parent-death signal fires when the thread that forked the child
// exits, not the process, and the Go runtime ends a thread when a
// goroutine locked to it returns. Forking from one goroutine that stays
// locked to its thread for the life of the process keeps that from
// killing containers at random.
var (
	forkerOnce sync.Once
	forker     = make(chan func())
)

func startOnLockedThread(cmd *exec.Cmd) error {
	forkerOnce.Do(func() {
		go func() {
			runtime.LockOSThread() // never unlocked: the thread must live
			for f := range forker {
				f()
			}
		}()
	})
	errc := make(chan error, 1)
	forker <- func() { errc <- cmd.Start() }
	return <-errc
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// lockedBuffer collects the init step's stderr from exec's copying
// goroutine while tests read it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
