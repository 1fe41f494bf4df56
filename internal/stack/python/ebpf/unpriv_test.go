package ebpf

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cpuwhy/cpuwhy/test/privtest"
)

const helperEnv = "CPUWHY_PYFRAMES_HELPER"

// testLayout is 3.12's, as package python passes it.
var testLayout = Layout{ThreadFrame: 56, CFrameCurrent: 0, ThreadNativeID: 144, FrameBack: 8, FrameCode: 0, FrameInstr: 56,
	FrameOwner: 70, FrameIsEntry: -1, OwnedByCStack: 3, FrameRead: 78}

// TestHelperLoadUnprivileged is run by TestLoadUnprivileged in a child
// as an unprivileged user; on its own it does nothing.
func TestHelperLoadUnprivileged(t *testing.T) {
	if os.Getenv(helperEnv) == "" {
		t.Skip("helper for TestLoadUnprivileged")
	}
	w, err := Load(testLayout)
	if err == nil {
		w.Close()
	}
	fmt.Printf("RESULT permission=%v err=%v\n", errors.Is(err, os.ErrPermission), err)
}

// TestLoadUnprivileged: without CAP_BPF and CAP_PERFMON the program does
// not load, and the error says so (os.ErrPermission) in one line; package
// python then reads chains from user space.
func TestLoadUnprivileged(t *testing.T) {
	if os.Getuid() != 0 {
		privtest.Require(t, "needs root to run the loader as nobody")
	}
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "ebpf.test")
	if err := os.WriteFile(exe, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run", "^TestHelperLoadUnprivileged$", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var result string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "RESULT ") {
			result = l
		}
	}
	t.Log(result)
	if !strings.HasPrefix(result, "RESULT permission=true ") {
		t.Errorf("as nobody, Load gave %q, want an error matching os.ErrPermission", result)
	}
}
