package sample_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/sample"
	"github.com/cpuwhy/cpuwhy/internal/sys"
	"github.com/cpuwhy/cpuwhy/test/privtest"
	"github.com/cpuwhy/cpuwhy/test/scenario"
)

const helperEnv = "CPUWHY_SAMPLE_HELPER_PID"

// TestHelperRecordUnprivileged is run by TestRecordUnprivileged in a
// child as an unprivileged user; on its own it does nothing.
func TestHelperRecordUnprivileged(t *testing.T) {
	pid, err := strconv.Atoi(os.Getenv(helperEnv))
	if err != nil {
		t.Skip("helper for TestRecordUnprivileged")
	}
	rec, err := sample.Record(context.Background(), pid, sample.Options{Duration: 500 * time.Millisecond, Kernel: true})
	if err != nil {
		fmt.Printf("RESULT error %v\n", err)
		return
	}
	fmt.Printf("RESULT samples=%d kernel=%v notes=%q\n", len(rec.Samples), rec.KernelSampled, rec.Notes)
}

// TestRecordUnprivileged records the user's own process as nobody: with
// perf_event_paranoid >= 2 the kernel refuses kernel-mode samples, and
// Record must fall back to user-only sampling with a note.
func TestRecordUnprivileged(t *testing.T) {
	if os.Getuid() != 0 {
		privtest.Require(t, "needs root to run the target and the sampler as nobody")
	}
	paranoid, err := sys.PerfEventParanoid()
	if err != nil {
		privtest.Require(t, fmt.Sprintf("no perf_event_paranoid (no perf events?): %v", err))
	}
	// Copies nobody can execute: the build caches are root's.
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	exe := copyExecutable(t, scenario.Build(t, "compute").Path, filepath.Join(dir, "compute"))
	self = copyExecutable(t, self, filepath.Join(dir, "sample.test"))
	nobody := &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	target := exec.Command(exe)
	target.SysProcAttr = nobody
	if err := target.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { target.Process.Kill(); target.Wait() })
	time.Sleep(100 * time.Millisecond)

	helper := exec.Command(self, "-test.run=^TestHelperRecordUnprivileged$", "-test.count=1")
	helper.Env = append(os.Environ(), helperEnv+"="+strconv.Itoa(target.Process.Pid))
	helper.SysProcAttr = nobody
	out, err := helper.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	_, result, ok := strings.Cut(string(out), "RESULT ")
	if !ok {
		t.Fatalf("helper printed no result:\n%s", out)
	}
	result, _, _ = strings.Cut(result, "\n")
	t.Logf("as nobody with perf_event_paranoid=%d: %s", paranoid, result)
	if strings.HasPrefix(result, "error") || strings.Contains(result, "samples=0 ") {
		t.Fatalf("unprivileged recording failed: %s", result)
	}
	if paranoid >= 2 && !strings.Contains(result, "kernel=false") {
		t.Errorf("paranoid %d let nobody sample the kernel? %s", paranoid, result)
	}
}

func copyExecutable(t *testing.T, src, dst string) string {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}
