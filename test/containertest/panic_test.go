package containertest_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/test/containertest"
	"github.com/cpuwhy/cpuwhy/test/privtest"
	"github.com/cpuwhy/cpuwhy/test/scenario"
)

const envPanicHelper = "CPUWHY_CONTAINERTEST_PANIC_HELPER"

// leftovers is what a panicking test reports so that its parent can
// check that Cleanup removed it.
type leftovers struct {
	PID  int
	Dirs []string
}

// TestPanicHelper is run by TestNothingLeftAfterPanic in a child test
// binary: it starts a container and panics.
func TestPanicHelper(t *testing.T) {
	if os.Getenv(envPanicHelper) != "1" {
		t.Skip("helper for TestNothingLeftAfterPanic")
	}
	p := scenario.Build(t, "busypoll")
	c := containertest.Start(t, containertest.Config{Program: p.Path, Files: p.Files, Network: true})
	c.WaitReady(t, 10*time.Second)
	report, _ := json.Marshal(leftovers{PID: c.HostPID, Dirs: append(c.CgroupDirs, c.RootDir, c.DataRoot)})
	os.Stdout.Write(append([]byte("LEFTOVERS "), append(report, '\n')...))
	panic("test panics with a container running")
}

func TestNothingLeftAfterPanic(t *testing.T) {
	t.Parallel()
	scenario.Build(t, "busypoll") // build here, so a build failure is reported here
	cmd := exec.Command(os.Args[0], "-test.run=^TestPanicHelper$", "-test.v")
	cmd.Env = append(os.Environ(), envPanicHelper+"=1")
	out, err := cmd.CombinedOutput()
	if strings.Contains(string(out), "--- SKIP: TestPanicHelper") {
		// The helper could not make a container; it said why.
		privtest.Require(t, "helper skipped:\n"+string(out))
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		t.Fatalf("helper did not fail (%v):\n%s", err, out)
	}
	var left leftovers
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "LEFTOVERS "); ok {
			if err := json.Unmarshal([]byte(rest), &left); err != nil {
				t.Fatal(err)
			}
		}
	}
	if left.PID == 0 {
		t.Fatalf("helper never started its container:\n%s", out)
	}
	if _, err := os.Stat(procPath(left.PID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("container process %d survived the panic", left.PID)
	}
	for _, dir := range left.Dirs {
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived the panic (%v)", dir, err)
		}
	}
}
