package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cpuwhy/cpuwhy/internal/target"
	"github.com/cpuwhy/cpuwhy/internal/top"
	"github.com/cpuwhy/cpuwhy/test/containertest"
)

func TestMain(m *testing.M) {
	containertest.Main(m, func() {
		if binDir != "" {
			os.RemoveAll(binDir)
		}
	})
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

// cpuwhyBinary builds cmd/cpuwhy once per test run, for tests that need a
// real process: exit codes, stderr, no terminal, tmux.
func cpuwhyBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "cpuwhy-cli-test-")
		if binErr != nil {
			return
		}
		// Others may run it: a test runs it as nobody.
		if binErr = os.Chmod(binDir, 0o755); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "cpuwhy")
		build := exec.Command("go", "build", "-o", binPath, "github.com/cpuwhy/cpuwhy/cmd/cpuwhy")
		build.Env = append(os.Environ(), "CGO_ENABLED=0") // as the README builds it
		out, err := build.CombinedOutput()
		if err != nil {
			binErr = err
			binPath = string(out)
		}
	})
	if binErr != nil {
		t.Fatalf("building cpuwhy: %v\n%s", binErr, binPath)
	}
	return binPath
}

// run runs cpuwhy in-process and returns its exit status and streams.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Main(args, Streams{In: strings.NewReader(""), Out: &out, Err: &errOut})
	return code, out.String(), errOut.String()
}

// frames decodes JSON Lines output of cpuwhy top --json.
func frames(t *testing.T, out string) []top.Frame {
	t.Helper()
	var fs []top.Frame
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var f top.Frame
		if err := dec.Decode(&f); err != nil {
			t.Fatalf("decoding %q: %v", out, err)
		}
		fs = append(fs, f)
	}
	return fs
}

func findProcess(f top.Frame, pid int) *top.Process {
	for i := range f.Processes {
		if f.Processes[i].PID == pid {
			return &f.Processes[i]
		}
	}
	return nil
}

func findThread(p *top.Process, name string) *top.Thread {
	for i := range p.Threads {
		if p.Threads[i].Name == name {
			return &p.Threads[i]
		}
	}
	return nil
}

func targetSpecName(re string) target.Spec { return target.Spec{Name: re} }
