package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/test/privtest"
	"github.com/cpuwhy/cpuwhy/test/scenario"
)

// TestDiagnoseRuntimes: a JVM and a node, started with no flag (the JVM
// with a small heap), each spinning in one method or function, in the
// interpreter, or collecting garbage: the diagnosis names the method, the
// function with its line, or the collector.
func TestDiagnoseRuntimes(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skipf("unwinding is implemented for amd64 only, not %s", runtime.GOARCH)
	}
	for _, tt := range []struct {
		name, scenario, tool, mode string
		want                       []string
	}{
		{"java compiled", "javahot", "java", "compute", []string{
			"VERDICT 1: compute_loop — java", "computes in user space, in Hot.computeLoop,",
			"stack: Hot.computeLoop <- Hot.main (interpreted) <- StubRoutines (1) <- JavaCalls::call_helper",
			"note: asked the JVM (PID", "--no-attach forbids this"}},
		{"java interpreted", "javahot", "java", "huge", []string{
			"VERDICT 1: compute_loop — java", "computes in user space, in Huge.hugeLoop (interpreted),",
			"stack: Huge.hugeLoop (interpreted) <- Hot.main (interpreted) <- StubRoutines"}},
		{"java gc pressure", "javahot", "java", "gc", []string{
			"VERDICT 1: gc_pressure — the garbage collector of java", "the JVM's G1 garbage collector takes"}},
		{"java jit compilation", "javahot", "java", "jit", []string{
			"VERDICT 1: jit_compilation — the JIT compilers of java", "the JVM's JIT compilers take", "(busiest: C2 CompilerThre (TID"}},
		{"node compute", "nodehot", "node", "compute", []string{
			"VERDICT 1: compute_loop — node", "computes in JavaScript, in settleAccounts at line 7 of ledger.js,",
			"stack: settleAccounts (ledger.js:7) <- (anonymous) (ledger.js:1) <- Module._compile"}},
		{"node callback", "nodehot", "node", "callback", []string{
			"VERDICT 1: compute_loop — node", "computes in JavaScript, in tick at line 23 of ledger.js,"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := exec.LookPath(tt.tool); err != nil {
				privtest.Require(t, tt.tool+" is not installed (.ci/run installs it)")
			}
			cmd := scenario.Build(t, tt.scenario).Start(t, nil, tt.mode)
			pid := cmd.Process.Pid
			t.Cleanup(func() {
				for _, f := range []string{"/tmp/perf-%d.map", "/tmp/.java_pid%d"} {
					os.Remove(fmt.Sprintf(f, pid))
				}
			})
			time.Sleep(time.Second) // the JIT compiles the hot code
			code, out, errOut := run(t, "-d", "2s", strconv.Itoa(pid))
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			for _, want := range tt.want {
				if !strings.Contains(out, want) {
					t.Errorf("report lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

// TestRecordJVM: `cpuwhy record` of a JVM started with no flag names the
// compiled method in its table and its folded stacks.
func TestRecordJVM(t *testing.T) {
	if _, err := exec.LookPath("java"); err != nil {
		privtest.Require(t, "java is not installed (.ci/run installs it)")
	}
	cmd := scenario.Build(t, "javahot").Start(t, nil, "compute")
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		os.Remove(fmt.Sprintf("/tmp/perf-%d.map", pid))
		os.Remove(fmt.Sprintf("/tmp/.java_pid%d", pid))
	})
	out := filepath.Join(t.TempDir(), "jvm.folded")
	code, stdout, errOut := run(t, "record", "-d", "2s", "-o", out, strconv.Itoa(pid))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if m := hottestFunction.FindStringSubmatch(stdout); m == nil || m[2] != "Hot.computeLoop ([anon])" {
		t.Errorf("the hottest function is not Hot.computeLoop:\n%s", stdout)
	}
	folded, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(folded), ";Hot.computeLoop ") {
		t.Errorf("no folded stack ends in Hot.computeLoop:\n%.2000s", folded)
	}
}
