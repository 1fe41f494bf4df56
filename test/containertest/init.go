package containertest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// envInit marks the re-executed test binary as a container's init step;
// its value is the JSON initSpec.
const envInit = "CPUWHY_CONTAINERTEST_INIT"

// The init step's inherited descriptors (exec.Cmd.ExtraFiles start at 3).
const (
	syncFD  = 3 // Start writes one byte once the step is in its cgroups
	errorFD = 4 // close-on-exec: EOF without data means exec succeeded
	netnsFD = 5 // with initSpec.JoinNet: the network namespace to join
)

// initSpec is what the init step needs to become the container.
type initSpec struct {
	Root     string   // host path of the new root
	Path     string   // program path inside the root
	Args     []string // argv, with argv[0]
	Env      []string
	Hostname string
	Network  bool
	JoinNet  bool // join the namespace at netnsFD
}

// Main must be called from TestMain of every package that uses Start or
// NewSandbox:
//
//	func TestMain(m *testing.M) { containertest.Main(m) }
//
// In the test binary re-executed by Start it becomes the container's init
// step, and by NewSandbox the sandbox's PID 1; then it never returns.
// Otherwise it runs the tests and exits.
//
// The cleanups run after the tests, for what a package shares across them
// (a binary built once, say).
func Main(m *testing.M, cleanups ...func()) {
	if os.Getenv(envSandbox) == "1" {
		holdSandbox() // never returns
	}
	if spec, ok := os.LookupEnv(envInit); ok {
		err := initContainer(spec)
		// Only reached on failure: tell Start why.
		fmt.Fprintf(os.NewFile(errorFD, "error pipe"), "%v", err)
		os.Exit(127)
	}
	code := m.Run()
	for _, c := range cleanups {
		c()
	}
	os.Exit(code)
}

// initContainer runs in the new namespaces and execs the program, so it
// only returns an error.
func initContainer(specJSON string) error {
	unix.CloseOnExec(errorFD)
	var spec initSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		return fmt.Errorf("decoding init spec: %w", err)
	}
	// Wait until Start has put us in the cgroups: the program must never
	// run outside them, or its /proc/PID/cgroup would be the host's.
	syncPipe := os.NewFile(syncFD, "sync pipe")
	var b [1]byte
	if n, _ := syncPipe.Read(b[:]); n != 1 {
		return errors.New("start gave up before moving the container into its cgroups")
	}
	syncPipe.Close()

	// Namespaces apply to the whole process, but keep the steps on one
	// thread anyway so that nothing depends on which thread runs them.
	// setns of a network namespace does not: it moves only the calling
	// thread, which must be the one that execs.
	runtime.LockOSThread()

	if spec.JoinNet {
		if err := unix.Setns(netnsFD, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("joining the network namespace: %w", err)
		}
		unix.Close(netnsFD)
	}

	// Nothing below may propagate back to the host's mounts.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making mounts private: %w", err)
	}
	// pivot_root needs the new root to be a mount point.
	if err := unix.Mount(spec.Root, spec.Root, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind-mounting %s: %w", spec.Root, err)
	}
	// A proc of the new PID namespace, so the program sees itself as 1.
	if err := unix.Mount("proc", filepath.Join(spec.Root, "proc"), "proc",
		unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mounting proc: %w", err)
	}
	if err := unix.Chdir(spec.Root); err != nil {
		return fmt.Errorf("entering %s: %w", spec.Root, err)
	}
	// pivot_root(".", ".") stacks the old root on top of the new one;
	// detaching "." then drops the old root without needing a directory
	// to park it in.
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detaching the old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
		return fmt.Errorf("setting the hostname: %w", err)
	}
	if spec.Network {
		if err := loopbackUp(); err != nil {
			return err
		}
	}
	if err := unix.Exec(spec.Path, spec.Args, spec.Env); err != nil {
		return fmt.Errorf("exec %s: %w", spec.Path, err)
	}
	return nil // not reached
}

// loopbackUp sets IFF_UP on lo. Only called inside the container's own
// network namespace: the host's interfaces are never touched.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket for loopback: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("reading lo flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bringing lo up: %w", err)
	}
	return nil
}
