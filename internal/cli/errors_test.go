package cli

import (
	"bytes"
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/test/privtest"
	"github.com/cpuwhy/cpuwhy/test/scenario"
)

// runBinary runs the built cpuwhy with no terminal and no TERM, as a cron
// job or `docker exec` without -t would, and returns its exit status and
// streams.
func runBinary(t *testing.T, cred *syscall.Credential, args ...string) (int, string, string) {
	t.Helper()
	// In a directory of its own: record without -o writes cpuwhy.pb.gz
	// where it runs, which was once the package's own directory.
	// Another user cannot enter the test's temporary directories: it
	// runs in /, where it may not write.
	dir := "/"
	if cred == nil {
		dir = t.TempDir()
	}
	return runBinaryIn(t, dir, cred, args...)
}

// runBinaryIn is runBinary in directory dir, for commands that write
// files where they run.
func runBinaryIn(t *testing.T, dir string, cred *syscall.Credential, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, cpuwhyBinary(t), args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running cpuwhy %v: %v", args, err)
	}
	return code, out.String(), errOut.String()
}

// startProgram starts a scenario on the host until the test ends.
func startProgram(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	return scenario.Build(t, name).Start(t, nil, args...)
}

func TestBatchWithoutTerminal(t *testing.T) {
	cmd := startProgram(t, "compute")
	pid := strconv.Itoa(cmd.Process.Pid)
	code, out, errOut := runBinary(t, nil, "top", "-d", "0.5", pid)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if errOut != "" {
		t.Errorf("stderr %q, want nothing", errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 4 || !strings.HasPrefix(lines[0], "cpuwhy top - ") || !strings.Contains(lines[1], "PID") {
		t.Fatalf("not a text report:\n%s", out)
	}
	if !strings.Contains(lines[2], pid) || !strings.Contains(out, "cruncher") {
		t.Errorf("report lacks the process or its cruncher thread:\n%s", out)
	}
	if strings.Contains(out, "\x1b[") {
		t.Errorf("report has terminal escapes:\n%q", out)
	}
}

func TestErrorsAreOneLine(t *testing.T) {
	// A PID that certainly is free: one that just exited and was reaped.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	goneProg := scenario.Build(t, "idle")
	short := exec.Command(goneProg.Path)
	if err := short.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = short.Process.Kill(); _ = short.Wait() })
	go func() {
		time.Sleep(1500 * time.Millisecond)
		_ = short.Process.Kill()
	}()
	a := startProgram(t, "idle")
	b := startProgram(t, "idle")

	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     []string
	}{
		{"no such process", []string{"top", strconv.Itoa(gone.Process.Pid)}, 1,
			[]string{"no process has PID " + strconv.Itoa(gone.Process.Pid)}},
		{"process exited while observed", []string{"top", "-n", "5", "-d", "1", strconv.Itoa(short.Process.Pid)}, 1,
			[]string{"exited while cpuwhy was observing it"}},
		{"ambiguous name", []string{"top", "--name", "^idle$"}, 0, nil},
		{"kernel thread", []string{"top", "2"}, 1, []string{"kernel thread"}},
		{"unknown container", []string{"top", "--container", "no-such-container"}, 1,
			[]string{`no running container is named "no-such-container"`}},
		{"not a pid", []string{"top", "vpnserver"}, 2, []string{`"vpnserver" is not a PID`}},
		{"two targets", []string{"top", "--name", "x", "--container", "y"}, 2, []string{"give one of"}},
		{"bad regexp", []string{"top", "--name", "("}, 2, []string{"not a regular expression"}},
		{"unknown flag", []string{"top", "--bogus"}, 2, []string{"unknown flag: --bogus"}},
		{"bad interval", []string{"top", "-d", "soon"}, 2, []string{"-d soon: give a duration from 100ms to 1h"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runBinary(t, nil, tt.args...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr %q", code, tt.wantCode, errOut)
			}
			if tt.wantCode == 0 {
				return
			}
			assertOneLine(t, errOut, tt.want...)
		})
	}
	_, _ = a, b
}

// assertOneLine checks that stderr is one "cpuwhy: ..." line holding every
// want, and no Go stack trace.
func assertOneLine(t *testing.T, stderr string, want ...string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "cpuwhy: ") {
		t.Fatalf("stderr is not one cpuwhy: line:\n%s", stderr)
	}
	for _, w := range want {
		if !strings.Contains(lines[0], w) {
			t.Errorf("stderr %q lacks %q", lines[0], w)
		}
	}
	if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic") {
		t.Errorf("stderr has a stack trace: %s", stderr)
	}
}

func TestAmbiguousNameListsCandidates(t *testing.T) {
	a := startProgram(t, "idle")
	b := startProgram(t, "idle")
	// top shows every match; a command that needs one process refuses.
	code, out, errOut := runBinary(t, nil, "top", "--name", "^idle$", "--json", "-d", "0.2")
	if code != 0 {
		t.Fatalf("top --name: exit %d: %s", code, errOut)
	}
	f := frames(t, out)[0]
	if findProcess(f, a.Process.Pid) == nil || findProcess(f, b.Process.Pid) == nil {
		t.Errorf("top --name ^idle$ lacks one of %d, %d: %s", a.Process.Pid, b.Process.Pid, out)
	}
	g := &globalOptions{procRoot: "/proc"}
	sel := g.selector(g.resolver())
	_, err := sel.Select(context.Background(), targetSpecName("^idle$"))
	if err == nil {
		t.Fatal("Select(--name ^idle$) with two matches succeeded")
	}
	for _, pid := range []int{a.Process.Pid, b.Process.Pid} {
		if !strings.Contains(err.Error(), strconv.Itoa(pid)+" (idle)") {
			t.Errorf("error %q does not list candidate %d", err, pid)
		}
	}
}

func TestPrivilegeNote(t *testing.T) {
	if os.Geteuid() != 0 {
		privtest.Require(t, "needs root to start a target that an unprivileged user cannot trace")
	}
	cmd := startProgram(t, "compute")
	// nobody may read the CPU figures of root's process but not trace it.
	code, out, errOut := runBinary(t, &syscall.Credential{Uid: 65534, Gid: 65534}, "top", "-d", "0.3", strconv.Itoa(cmd.Process.Pid))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "cruncher") {
		t.Errorf("the thread view should still work without privilege:\n%s", out)
	}
	assertOneLine(t, errOut, "cannot trace PID "+strconv.Itoa(cmd.Process.Pid), "missing CAP_SYS_PTRACE", "still works")
}

func TestBinaryIsStatic(t *testing.T) {
	f, err := elf.Open(cpuwhyBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("cpuwhy has a program interpreter: it is dynamically linked, and would not run in a minimal container or on an older host")
		}
	}
}

func TestHiddenProcessNeedsPrivilege(t *testing.T) {
	if os.Geteuid() != 0 {
		privtest.Require(t, "needs root to mount a proc filesystem with hidepid")
	}
	// A proc mount of our own that hides other users' processes, as
	// hardened hosts mount /proc, read through cpuwhy's --proc.
	dir := t.TempDir()
	if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil { // nobody walks through it
		t.Fatal(err)
	}
	if err := syscall.Mount("proc", dir, "proc", 0, "hidepid=invisible"); err != nil {
		privtest.Require(t, "mounting proc with hidepid=invisible: "+err.Error())
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	cmd := startProgram(t, "compute")
	code, _, errOut := runBinary(t, &syscall.Credential{Uid: 65534, Gid: 65534}, "--proc", dir, "top", strconv.Itoa(cmd.Process.Pid))
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr %q", code, errOut)
	}
	assertOneLine(t, errOut, "cannot see PID "+strconv.Itoa(cmd.Process.Pid), "hidepid=invisible", "missing CAP_SYS_PTRACE", "still works")
}
