package agent

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/diagnose"
	"github.com/cpuwhy/cpuwhy/internal/reportdir"
	"github.com/cpuwhy/cpuwhy/test/spinner"
)

var binDir string

func TestMain(m *testing.M) {
	spinner.Main()
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// cpuwhyBinary builds the static binary once per run, as the README does.
func cpuwhyBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "cpuwhy-agent-test-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "cpuwhy")
		build := exec.Command("go", "build", "-o", binPath, "github.com/cpuwhy/cpuwhy/cmd/cpuwhy")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("%w\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatalf("building cpuwhy: %v", binErr)
	}
	return binPath
}

// cpuwhy is a running `cpuwhy watch` or `cpuwhy agent`.
type cpuwhy struct {
	t    testing.TB
	cmd  *exec.Cmd
	done chan struct{}

	mu             sync.Mutex
	stdout, stderr bytes.Buffer
	lines          chan string // stdout, line by line
}

// start starts cpuwhy with args; the test's cleanup stops it with SIGTERM.
func start(t testing.TB, args ...string) *cpuwhy {
	t.Helper()
	c := &cpuwhy{t: t, cmd: exec.Command(cpuwhyBinary(t), args...), done: make(chan struct{}), lines: make(chan string, 1000)}
	c.cmd.Env = []string{"PATH=/usr/bin:/bin"}
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errPipe, err := c.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("starting cpuwhy %v: %v", args, err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.mu.Lock()
			c.stdout.WriteString(sc.Text() + "\n")
			c.mu.Unlock()
			select {
			case c.lines <- sc.Text():
			default:
			}
		}
	}()
	go func() {
		defer wg.Done()
		c.mu.Lock()
		defer c.mu.Unlock()
		var b [4096]byte
		for {
			c.mu.Unlock()
			n, err := errPipe.Read(b[:])
			c.mu.Lock()
			c.stderr.Write(b[:n])
			if err != nil {
				return
			}
		}
	}()
	go func() {
		wg.Wait()
		c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		c.cmd.Process.Kill()
		<-c.done
	})
	return c
}

// stop sends SIGTERM and returns the exit status and stderr.
func (c *cpuwhy) stop() (int, string) {
	c.t.Helper()
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		c.t.Fatalf("cpuwhy did not stop within 30 s of SIGTERM; stderr:\n%s", c.errText())
	}
	return c.cmd.ProcessState.ExitCode(), c.errText()
}

func (c *cpuwhy) errText() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stderr.String()
}

func (c *cpuwhy) outText() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stdout.String()
}

// waitStderr waits until stderr holds s.
func (c *cpuwhy) waitStderr(s string, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if strings.Contains(c.errText(), s) {
			return true
		}
		select {
		case <-c.done:
			return strings.Contains(c.errText(), s)
		case <-time.After(100 * time.Millisecond):
		}
	}
	return false
}

// nextLine waits for a line on stdout.
func (c *cpuwhy) nextLine(within time.Duration) (string, bool) {
	select {
	case l := <-c.lines:
		return l, true
	case <-c.done:
		return "", false
	case <-time.After(within):
		return "", false
	}
}

// readReport reads the JSON of a report and checks its text and HTML are
// beside it.
func readReport(t testing.TB, dir string, e reportdir.Entry) *diagnose.Report {
	t.Helper()
	d := reportdir.Dir{Path: dir}
	b, err := os.ReadFile(d.File(e, reportdir.JSON))
	if err != nil {
		t.Fatal(err)
	}
	var r diagnose.Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("decoding %s: %v", d.File(e, reportdir.JSON), err)
	}
	for _, kind := range []string{reportdir.Text, reportdir.HTML} {
		f, err := os.Open(d.File(e, kind))
		if err != nil {
			t.Errorf("report %s: %v", e.Stem, err)
			continue
		}
		head, _ := io.ReadAll(io.LimitReader(f, 512))
		f.Close()
		if len(head) == 0 {
			t.Errorf("%s is empty", d.File(e, kind))
		}
	}
	return &r
}
