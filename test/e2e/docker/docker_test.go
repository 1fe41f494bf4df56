package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/test/scenario"
)

const (
	image      = "cpuwhy-e2e/vpnserver:test"
	programDir = "/opt/vpnserver" // where the field report's server lives
	program    = programDir + "/vpnserver"

	// minSpinCPU is the least CPU (percent of one core) the spinning
	// NatThreadMain must show over one second: it tells a thread
	// measured from one that was not (0). It spins on one core of two;
	// on a loaded machine it gets only its share (44% was seen with
	// other tests running), and a CPU half as fast spins as long.
	minSpinCPU = 10

	cpuwhyTimeout = 30 * time.Second
)

// frame is the part of a `cpuwhy top --json` report the test checks.
type frame struct {
	Processes []struct {
		PID       int     `json:"pid"`
		NsPID     int     `json:"ns_pid"`
		Cmdline   string  `json:"cmdline"`
		CPU       float64 `json:"cpu"`
		Container *struct {
			Runtime string `json:"runtime"`
			ID      string `json:"id"`
			Name    string `json:"name"`
			Image   string `json:"image"`
		} `json:"container"`
		Threads []struct {
			TID  int     `json:"tid"`
			Name string  `json:"name"`
			CPU  float64 `json:"cpu"`
		} `json:"threads"`
	} `json:"processes"`
}

// TestTopDockerContainer runs the busypoll scenario in a container of a
// real dockerd and checks that cpuwhy top names the container, by each of
// the ways it can learn Docker's names, and finds the spinning thread.
func TestTopDockerContainer(t *testing.T) {
	e := startEngine(t) // first: it skips when there is no dockerd
	prog := scenario.Build(t, "busypoll")
	cpuwhy := buildCpuwhy(t)

	tarball := filepath.Join(e.Dir, "rootfs.tar")
	f, err := os.Create(tarball)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeRootfs(f, prog, programDir); err != nil {
		f.Close()
		t.Fatalf("writing the root filesystem: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	e.mustDocker(t, "import", tarball, image)

	name := e.runContainer(t, image, program)
	e.waitOutput(t, name, "ready", 30*time.Second)
	id := e.mustDocker(t, "inspect", "-f", "{{.Id}}", name)
	hostPID, err := strconv.Atoi(e.mustDocker(t, "inspect", "-f", "{{.State.Pid}}", name))
	if err != nil || hostPID <= 0 {
		t.Fatalf("docker inspect gave no pid for %s: %v", name, err)
	}
	t.Logf("container %s, id %s, host pid %d", name, id, hostPID)

	tests := []struct {
		name string
		args []string
		// detect: cpuwhy must find this dockerd itself, which it does
		// only when it is the lowest-numbered dockerd.
		detect bool
	}{
		{name: "API socket", args: []string{"--container", name, "--docker-socket", e.Socket}},
		{
			// A socket that does not exist: the name can only come
			// from <data-root>/containers/<id>/config.v2.json.
			name: "config.v2.json",
			args: []string{
				"--container", name,
				"--docker-socket", filepath.Join(e.Dir, "no-such.sock"),
				"--docker-data-root", e.DataRoot,
			},
		},
		// The users' default: --data-root and -H read from dockerd's
		// command line.
		{name: "dockerd flags", args: []string{"--container", name}, detect: true},
		{name: "id prefix", args: []string{"--container", id[:6], "--docker-socket", e.Socket}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.detect {
				if lowest := lowestDockerd(); lowest != e.PID {
					t.Skipf("another dockerd (pid %d) runs with a lower pid than this test's (%d); cpuwhy detects that one", lowest, e.PID)
				}
			}
			args := append([]string{"top", "--json", "-d", "1"}, tt.args...)
			fr := runCpuwhy(t, cpuwhy, args...)
			checkFrame(t, fr, id, name, hostPID)
		})
	}
}

// checkFrame checks that fr lists the vpnserver process of container
// id/name, at hostPID and as PID 1 inside, with NatThreadMain spinning.
func checkFrame(t *testing.T, fr frame, id, name string, hostPID int) {
	t.Helper()
	found := false
	for _, p := range fr.Processes {
		if !strings.Contains(p.Cmdline, program) {
			continue
		}
		found = true
		if p.PID != hostPID {
			t.Errorf("pid = %d, docker inspect says %d", p.PID, hostPID)
		}
		if p.NsPID != 1 {
			t.Errorf("ns_pid = %d, want 1", p.NsPID)
		}
		if p.Container == nil {
			t.Errorf("container = null, want docker %s", name)
		} else {
			if p.Container.Runtime != "docker" {
				t.Errorf("container.runtime = %q, want docker", p.Container.Runtime)
			}
			if p.Container.ID != id {
				t.Errorf("container.id = %q, want %q", p.Container.ID, id)
			}
			if p.Container.Name != name {
				t.Errorf("container.name = %q, want %q", p.Container.Name, name)
			}
			if p.Container.Image != image {
				t.Errorf("container.image = %q, want %q", p.Container.Image, image)
			}
		}
		spinning := false
		for _, th := range p.Threads {
			if th.Name == "NatThreadMain" {
				spinning = true
				if th.CPU < minSpinCPU {
					t.Errorf("NatThreadMain cpu = %.1f, want >= %d", th.CPU, minSpinCPU)
				}
			}
		}
		if !spinning {
			t.Errorf("no NatThreadMain among the threads of %d: %+v", p.PID, p.Threads)
		}
	}
	if !found {
		t.Errorf("no process with %s in its command line in %+v", program, fr.Processes)
	}
}

// runCpuwhy runs the cpuwhy binary and returns its last JSON report.
func runCpuwhy(t *testing.T, cpuwhy string, args ...string) frame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cpuwhyTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, cpuwhy, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("cpuwhy %s: %v\nstderr: %s\nstdout: %s", strings.Join(args, " "), err, stderr.Bytes(), stdout.Bytes())
	}
	var last *frame
	dec := json.NewDecoder(&stdout)
	for dec.More() {
		var fr frame
		if err := dec.Decode(&fr); err != nil {
			t.Fatalf("cpuwhy %s: decoding its JSON: %v", strings.Join(args, " "), err)
		}
		last = &fr
	}
	if last == nil {
		t.Fatalf("cpuwhy %s printed no report; stderr: %s", strings.Join(args, " "), stderr.Bytes())
	}
	return *last
}

// buildCpuwhy builds the cpuwhy command of this module into a temporary
// directory: the test runs the binary users run, flags and all.
func buildCpuwhy(t *testing.T) string {
	t.Helper()
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomodPath := strings.TrimSpace(string(gomod))
	if gomodPath == "" || gomodPath == os.DevNull {
		t.Fatal("go env GOMOD: not inside the cpuwhy module")
	}
	root := filepath.Dir(gomodPath)
	bin := filepath.Join(t.TempDir(), "cpuwhy")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/cpuwhy")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building cpuwhy: %v\n%s", err, out)
	}
	return bin
}
