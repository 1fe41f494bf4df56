package docker

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/test/containertest"
	"github.com/cpuwhy/cpuwhy/test/privtest"
)

const (
	engineStartTimeout = 60 * time.Second
	engineStopTimeout  = 30 * time.Second // dockerd gives containers 15 s to stop
	dockerCmdTimeout   = 60 * time.Second

	shimSocketDir = "/run/containerd/s"
)

// engine is a private dockerd, with its own containerd, started by
// startEngine and stopped when the test ends.
type engine struct {
	Dir      string // temporary directory holding everything below
	DataRoot string // --data-root
	ExecRoot string // --exec-root
	Socket   string // path of the API socket
	PID      int    // dockerd's pid

	client string // the docker CLI
	log    string // dockerd's stdout and stderr
	cmd    *exec.Cmd
	exited chan struct{} // closed once dockerd has been reaped
}

// startEngine starts dockerd and returns once its API answers. It skips the
// test (see privtest) when dockerd is not installed and fails it when
// dockerd does not come up, with the tail of dockerd's log.
func startEngine(t *testing.T) *engine {
	t.Helper()
	dockerd, err := exec.LookPath("dockerd")
	if err != nil {
		privtest.Require(t, "dockerd is not installed (Debian package docker.io)")
	}
	client, err := exec.LookPath("docker")
	if err != nil {
		privtest.Require(t, "the docker CLI is not installed (Debian package docker.io)")
	}
	if os.Geteuid() != 0 {
		privtest.Require(t, "running dockerd needs root")
	}
	// Under /tmp rather than t.TempDir: unix socket paths are limited to
	// 108 bytes and containerd puts its own sockets under the exec root.
	dir, err := os.MkdirTemp("", "cpuwhy-e2e-docker-")
	if err != nil {
		t.Fatal(err)
	}
	e := &engine{
		Dir:      dir,
		DataRoot: filepath.Join(dir, "data"),
		ExecRoot: filepath.Join(dir, "exec"),
		Socket:   filepath.Join(dir, "docker.sock"),
		client:   client,
		log:      filepath.Join(dir, "dockerd.log"),
		exited:   make(chan struct{}),
	}
	// Registered before anything is started, so every early failure
	// below still cleans up.
	t.Cleanup(func() { e.stop(t) })

	releaseParents, err := containertest.ShareCgroupParents()
	if err != nil {
		t.Fatalf("preparing docker cgroup parents: %v", err)
	}
	t.Cleanup(func() {
		if err := releaseParents(); err != nil {
			t.Errorf("removing docker cgroup parents: %v", err)
		}
	})

	// containerd 1.6's shims put their sockets in /run/containerd/s
	// whatever containerd's own state directory: the one host path
	// touched. What did not exist before is removed once empty.
	for _, d := range []string{filepath.Dir(shimSocketDir), shimSocketDir} {
		if _, err := os.Stat(d); errors.Is(err, os.ErrNotExist) {
			t.Cleanup(func() { _ = os.Remove(d) }) // after stop, and s before its parent: cleanups run last in, first out
		}
	}

	logFile, err := os.Create(e.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close() // dockerd has its own copy
	e.cmd = exec.Command(dockerd,
		// Never touch the host's network: no docker0, no NAT rules, no
		// forwarding sysctl. Containers run with --network none.
		"--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-forward=false",
		"--data-root="+e.DataRoot,
		"--exec-root="+e.ExecRoot,
		"--pidfile="+filepath.Join(dir, "docker.pid"),
		"-H", "unix://"+e.Socket,
		// The host has no systemd; cgroupfs also puts containers in
		// /docker/<id>, a layout cpuwhy must recognise.
		"--exec-opt", "native.cgroupdriver=cgroupfs",
		// overlay2 works on this kind of host (ext4 under /tmp); a host
		// where /tmp is itself overlayfs would need vfs.
		"--storage-driver=overlay2",
		// No daemon.json of the host's: its settings (a registry
		// mirror, another data root) must not leak in.
		"--config-file="+filepath.Join(dir, "daemon.json"),
	)
	if err := os.WriteFile(filepath.Join(dir, "daemon.json"), []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.cmd.Dir = dir
	e.cmd.Stdout, e.cmd.Stderr = logFile, logFile
	e.cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid: true, // a ^C at the terminal is the test's to handle
		// If the test binary dies outright, dockerd shuts itself and
		// its containerd down rather than living on.
		Pdeathsig: syscall.SIGTERM,
	}
	if err := e.cmd.Start(); err != nil {
		t.Fatalf("starting dockerd: %v", err)
	}
	e.PID = e.cmd.Process.Pid
	go func() {
		_ = e.cmd.Wait()
		close(e.exited)
	}()

	deadline := time.Now().Add(engineStartTimeout)
	var lastErr error
	for {
		select {
		case <-e.exited:
			t.Fatalf("dockerd exited while starting (%v); its log ends:\n%s", e.cmd.ProcessState, e.logTail())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, lastErr = e.dockerContext(ctx, "info", "--format", "{{.ServerVersion}}")
		cancel()
		if lastErr == nil {
			return e
		}
		if time.Now().After(deadline) {
			t.Fatalf("dockerd did not answer within %v: %v; its log ends:\n%s", engineStartTimeout, lastErr, e.logTail())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// docker runs the docker CLI against the engine and returns its stdout.
func (e *engine) docker(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dockerCmdTimeout)
	defer cancel()
	return e.dockerContext(ctx, args...)
}

func (e *engine) dockerContext(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, e.client, append([]string{"-H", "unix://" + e.Socket}, args...)...)
	// The CLI's own config (contexts, DOCKER_HOST) must not redirect it.
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+filepath.Join(e.Dir, "cli"), "DOCKER_HOST=", "DOCKER_CONTEXT=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return strings.TrimSpace(string(out)), nil
}

func (e *engine) mustDocker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := e.docker(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// runContainer runs image detached with no network and registers its
// removal. It returns the container's name.
func (e *engine) runContainer(t *testing.T, image string, command ...string) string {
	t.Helper()
	name := "cpuwhy-e2e-vpn-" + randomHex(4)
	t.Cleanup(func() {
		if _, err := e.docker("rm", "-f", name); err != nil && !strings.Contains(err.Error(), "No such container") {
			t.Errorf("removing container: %v", err)
		}
	})
	args := append([]string{"run", "-d", "--network", "none", "--name", name, image}, command...)
	e.mustDocker(t, args...)
	return name
}

// waitOutput waits until the container's output contains want.
func (e *engine) waitOutput(t *testing.T, name, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		state := e.mustDocker(t, "inspect", "-f", "{{.State.Status}}", name)
		logs := e.mustDocker(t, "logs", name)
		if state == "running" && strings.Contains(logs, want) {
			return
		}
		if state != "running" && state != "created" {
			t.Fatalf("container %s is %s; its output:\n%s", name, state, logs)
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s did not print %q within %v (state %s); its output:\n%s", name, want, timeout, state, logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop stops dockerd (SIGTERM, then SIGKILL), makes sure its containerd and
// shims are gone, unmounts what it left under its directory and removes
// the directory.
func (e *engine) stop(t *testing.T) {
	if e.cmd != nil && e.cmd.Process != nil {
		_ = e.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-e.exited:
		case <-time.After(engineStopTimeout):
			t.Errorf("dockerd did not stop within %v of SIGTERM; killing it; its log ends:\n%s", engineStopTimeout, e.logTail())
			_ = e.cmd.Process.Kill()
			<-e.exited
		}
	}
	// dockerd stops the containerd it started, and containerd its
	// shims; anything left is a leak, killed here so it does not outlive
	// the test.
	for _, p := range processesMentioning(e.Dir) {
		t.Errorf("%s (pid %d) outlived dockerd; killing it", p.cmdline, p.pid)
		if proc, err := os.FindProcess(p.pid); err == nil {
			_ = proc.Kill()
		}
	}
	if err := unmountUnder(e.Dir); err != nil {
		t.Error(err)
	}
	if err := os.RemoveAll(e.Dir); err != nil {
		t.Errorf("removing dockerd's directory: %v", err)
	}
}

// logTail returns the last lines of dockerd's log.
func (e *engine) logTail() string {
	data, err := os.ReadFile(e.log)
	if err != nil {
		return fmt.Sprintf("(reading the log: %v)", err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		// containerd's gRPC connection chatter buries the reason.
		if !strings.Contains(l, "module=grpc") {
			lines = append(lines, l)
		}
	}
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}

type process struct {
	pid     int
	cmdline string
}

// processesMentioning returns the processes whose command line contains
// s: dockerd's containerd names its config under the exec root, and the
// shims name containerd's socket there.
func processesMentioning(s string) []process {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var found []process
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
		if err != nil {
			continue // gone, or a kernel thread
		}
		cmdline := strings.TrimSpace(strings.ReplaceAll(string(data), "\x00", " "))
		if strings.Contains(cmdline, s) {
			found = append(found, process{pid, cmdline})
		}
	}
	return found
}

// unmountUnder lazily unmounts every mount point under dir, deepest first.
// After a clean shutdown there is none; after a killed dockerd there may
// be overlay and netns mounts. It uses umount(8) so that this test adds
// no raw syscalls of its own.
func unmountUnder(dir string) error {
	points, err := containertest.MountPointsUnder(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range points {
		if out, err := exec.Command("umount", "--lazy", p).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("unmounting %s: %w: %s", p, err, bytes.TrimSpace(out)))
		}
	}
	return errors.Join(errs...)
}

// lowestDockerd returns the pid of the lowest-numbered process named
// dockerd, the one cpuwhy's detection reads, or 0.
func lowestDockerd() int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	lowest := 0
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "comm"))
		if err == nil && strings.TrimSpace(string(comm)) == "dockerd" && (lowest == 0 || pid < lowest) {
			lowest = pid
		}
	}
	return lowest
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
