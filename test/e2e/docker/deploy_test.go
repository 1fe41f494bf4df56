package docker

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/test/spinner"
)

func TestMain(m *testing.M) {
	spinner.Main()
	os.Exit(m.Run())
}

// moduleRoot is the directory of the cpuwhy module.
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" || strings.TrimSpace(string(out)) == os.DevNull {
		t.Fatalf("go env GOMOD: %v %q", err, out)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// manifestCapabilities reads the capabilities deploy/kubernetes's
// DaemonSet adds, so that the image runs here with exactly those.
func manifestCapabilities(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var caps []string
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "add:":
			in = true
		case in && strings.HasPrefix(l, "- "):
			caps = append(caps, strings.TrimPrefix(l, "- "))
		case in && strings.HasPrefix(l, "#"):
		case in:
			in = false
		}
	}
	if len(caps) == 0 {
		t.Fatalf("no capabilities added in %s", path)
	}
	return caps
}

// The image built from deploy/Dockerfile (offline: FROM scratch and the
// static binary), run by a private dockerd with the host's PID namespace
// and only the DaemonSet's capabilities, catches a spike of a process of
// the host and writes its report where the host reads it.
func TestDeployImage(t *testing.T) {
	e := startEngine(t) // first: it skips when there is no dockerd
	root := moduleRoot(t)

	ctxDir := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(ctxDir, "cpuwhy"), "./cmd/cpuwhy")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // FROM scratch: no libc
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building cpuwhy: %v\n%s", err, out)
	}
	df, err := os.ReadFile(filepath.Join(root, "deploy", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), df, 0o644); err != nil {
		t.Fatal(err)
	}
	const image = "cpuwhy-e2e/cpuwhy:test"
	// The classic builder: BuildKit would fetch its frontend.
	build = exec.Command(e.client, "-H", "unix://"+e.Socket, "build", "-t", image, ctxDir)
	build.Env = append(os.Environ(), "DOCKER_CONFIG="+filepath.Join(e.Dir, "cli"), "DOCKER_HOST=", "DOCKER_CONTEXT=", "DOCKER_BUILDKIT=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("docker build %s: %v\n%s", ctxDir, err, out)
	}

	reports := t.TempDir()
	sn := spinner.Name()
	name := "cpuwhy-e2e-agent-" + randomHex(4)
	t.Cleanup(func() { e.docker("rm", "-f", name) })
	args := []string{"run", "-d", "--name", name, "--network", "none", "--pid", "host",
		"--cap-drop", "ALL", "--security-opt", "seccomp=unconfined", "--read-only",
		"-v", "/sys:/sys:ro", "-v", reports + ":/reports"}
	caps := manifestCapabilities(t, filepath.Join(root, "deploy", "kubernetes", "daemonset.yaml"))
	// A capability this machine's own bounding set lacks (a CI runner in
	// a container may have no CAP_SYS_RESOURCE) cannot be given to a
	// container here: runc fails. Leave it out, and say so.
	if missing := notBounded(t, caps); len(missing) > 0 {
		t.Logf("this machine's bounding set lacks %v: the container runs without them", missing)
		caps = slices.DeleteFunc(caps, func(c string) bool { return slices.Contains(missing, c) })
	}
	cmd := []string{image, "watch", "--name", "^" + sn + "$", "--cpu", "20", "--for", "2s",
		"--scan-interval", "250ms", "-d", "1s", "--dir", "/reports"}
	run := func(caps []string) error {
		a := slices.Clone(args)
		for _, c := range caps {
			a = append(a, "--cap-add", c)
		}
		_, err := e.docker(append(a, cmd...)...)
		return err
	}
	if err := run(caps); err != nil {
		// Docker before 23 does not know CAP_BPF and CAP_PERFMON (Linux
		// 5.8): there, CAP_SYS_ADMIN holds both. containerd, which runs
		// the DaemonSet, knows them.
		if !strings.Contains(err.Error(), `unknown capability: "CAP_BPF"`) && !strings.Contains(err.Error(), `unknown capability: "CAP_PERFMON"`) {
			t.Fatal(err)
		}
		e.docker("rm", "-f", name)
		old := caps
		caps = slices.DeleteFunc(slices.Clone(caps), func(c string) bool { return c == "BPF" || c == "PERFMON" })
		caps = append(caps, "SYS_ADMIN")
		t.Logf("this dockerd does not know CAP_BPF or CAP_PERFMON: running with %v instead of %v", caps, old)
		if err := run(caps); err != nil {
			t.Fatal(err)
		}
	}
	// Its status line is on stderr, which docker logs writes to its own.
	logs := func() string {
		c := exec.Command(e.client, "-H", "unix://"+e.Socket, "logs", name)
		c.Env = append(os.Environ(), "DOCKER_CONFIG="+filepath.Join(e.Dir, "cli"), "DOCKER_HOST=", "DOCKER_CONTEXT=")
		out, _ := c.CombinedOutput()
		return string(out)
	}
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(logs(), "cpuwhy: watching"); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the container did not start watching in 30 s:\n%s", logs())
		}
	}

	sp := spinner.Start(t, sn, 0, 0)
	deadline := time.Now().Add(60 * time.Second)
	var found []string
	for time.Now().Before(deadline) {
		found, _ = filepath.Glob(filepath.Join(reports, "*.json"))
		if len(found) > 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(found) != 1 {
		t.Fatalf("reports %v; the container's output:\n%s", found, logs())
	}
	b, err := os.ReadFile(found[0])
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Target struct {
			PID  int    `json:"pid"`
			Name string `json:"name"`
		} `json:"target"`
		Verdicts []struct {
			Pattern string `json:"pattern"`
		} `json:"verdicts"`
		Cpuwhy struct {
			Mechanism string `json:"mechanism"`
			Samples   int    `json:"samples"`
		} `json:"cpuwhy"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if r.Target.PID != sp.PID || r.Target.Name != sn || len(r.Verdicts) == 0 || r.Cpuwhy.Mechanism != "ebpf" || r.Cpuwhy.Samples == 0 {
		t.Errorf("report from the container: %+v; want the host's spinner %d, a verdict, by ebpf, with stack samples\n%s", r, sp.PID, logs())
	}
	if out := logs(); !strings.Contains(out, "/reports/"+filepath.Base(found[0])) {
		t.Errorf("the container's output does not name the report %s:\n%s", filepath.Base(found[0]), out)
	}
	// With the manifest's capabilities and the host's PIDs, the scans
	// are the BPF listing's, not a stat file per process: the watch says
	// when it falls back to /proc.
	if out := logs(); strings.Contains(out, "scans read /proc") {
		t.Errorf("the container's scans read /proc, not the BPF listing:\n%s", out)
	}
}

// capNumbers numbers the capabilities the DaemonSet may name.
var capNumbers = map[string]uint{
	"CHOWN": 0, "DAC_OVERRIDE": 1, "DAC_READ_SEARCH": 2, "FOWNER": 3, "KILL": 5, "SETGID": 6, "SETUID": 7,
	"IPC_LOCK": 14, "SYS_PTRACE": 19, "SYS_ADMIN": 21, "SYS_RESOURCE": 24, "SYSLOG": 34, "PERFMON": 38, "BPF": 39,
}

// notBounded returns the capabilities of caps outside this process's
// bounding set.
func notBounded(t *testing.T, caps []string) []string {
	t.Helper()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	var bnd uint64
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "CapBnd:"); ok {
			bnd, err = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	var missing []string
	for _, c := range caps {
		n, ok := capNumbers[c]
		if !ok {
			t.Fatalf("capability %s: not one the test knows the number of", c)
		}
		if bnd&(1<<n) == 0 {
			missing = append(missing, c)
		}
	}
	return missing
}
