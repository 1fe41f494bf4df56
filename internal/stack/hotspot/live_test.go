package hotspot_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/cpuprofile"
	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/stack"
	"github.com/cpuwhy/cpuwhy/internal/stack/hotspot"
	"github.com/cpuwhy/cpuwhy/test/privtest"
	"github.com/cpuwhy/cpuwhy/test/scenario"
)

// jvm is a running javahot scenario and what it printed after "ready".
type jvm struct {
	pid int
	mu  sync.Mutex
	out bytes.Buffer
}

func (j *jvm) output() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.out.String()
}

// startJVM runs the javahot scenario in mode on the host until the test
// ends, and removes the files the JVM leaves in /tmp (its perf map, its
// attach socket).
func startJVM(t *testing.T, mode string) *jvm {
	t.Helper()
	if _, err := exec.LookPath("java"); err != nil {
		privtest.Require(t, "java is not installed (apt-get install openjdk-17-jdk-headless)")
	}
	p := scenario.Build(t, "javahot")
	cmd := exec.Command(p.Path, mode)
	cmd.Dir = t.TempDir()
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	j := &jvm{pid: cmd.Process.Pid}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		for _, f := range []string{"/tmp/perf-%d.map", "/tmp/.java_pid%d", "/tmp/.attach_pid%d"} {
			os.Remove(fmt.Sprintf(f, j.pid))
		}
	})
	ready := make(chan error, 1)
	go func() {
		r := bufio.NewReader(stdout)
		line, err := r.ReadString('\n')
		if err == nil && line != "ready\n" {
			err = fmt.Errorf("first line %q", line)
		}
		ready <- err
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			j.mu.Lock()
			j.out.Write(buf[:n])
			j.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("javahot %s: %v", mode, err)
		}
	case <-time.After(60 * time.Second): // a JVM on a loaded 2-core VM
		t.Fatalf("javahot %s did not print ready", mode)
	}
	return j
}

func record(t *testing.T, pid int, noAttach bool) *cpuprofile.Result {
	t.Helper()
	res, err := cpuprofile.Record(context.Background(), pid, cpuprofile.Options{
		FS: proc.FS{}, Duration: 2 * time.Second, NsPID: proc.FS{}.Identity(pid).NsPID, NoAttach: noAttach,
	})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// leafShare is the part of the samples of thread tid whose innermost
// user frame has kind and function.
func leafShare(res *cpuprofile.Result, tid int, kind stack.Kind, function string) (float64, string) {
	var n, all int64
	var best []stack.Frame
	var most int64
	for _, s := range res.Profile.Stacks {
		if s.TID != tid {
			continue
		}
		all += s.Count
		if s.Count > most {
			best, most = s.Frames, s.Count
		}
		for _, f := range s.Frames {
			if f.IsKernel() {
				continue
			}
			if f.Kind == kind && f.Function == function {
				n += s.Count
			}
			break
		}
	}
	names := make([]string, len(best))
	for i, f := range best {
		names[i] = fmt.Sprintf("%s [%s]", f.Name(), f.Kind)
	}
	if all == 0 {
		return 0, "no samples"
	}
	return float64(n) / float64(all), fmt.Sprintf("%d of %d samples: %s", most, all, strings.Join(names, " <- "))
}

func hasNote(res *cpuprofile.Result, sub string) bool {
	for _, n := range res.Notes {
		if strings.Contains(n, sub) {
			return true
		}
	}
	return false
}

// mainThread is the JVM's main Java thread: the process's second task
// (the first, the launcher's, waits for it).
func mainThread(t *testing.T, pid int) int { return scenario.OtherThread(t, pid) }

// TestCompiled: a JVM started with no flag, its thread in a method C2
// compiled: the leaf is the method, named as Java names it, and the
// attach is said. The JVM prints nothing (a SIGQUIT without the trigger
// file would print a thread dump on its stdout).
func TestCompiled(t *testing.T) {
	j := startJVM(t, "compute")
	tid := mainThread(t, j.pid)
	res := record(t, j.pid, false)
	// The loop is all the thread does; most samples must be named (a
	// few may fall in code compiled since the JVM wrote its map).
	if share, hot := leafShare(res, tid, hotspot.Kind, "Hot.computeLoop"); share < 0.8 {
		t.Errorf("%.0f%% of the main thread's samples end in Hot.computeLoop, want >= 80%%; hottest: %s; notes %q", 100*share, hot, res.Notes)
	}
	if !hasNote(res, "asked the JVM") {
		t.Errorf("no note says the JVM was asked for its map: %q", res.Notes)
	}
	// The compiled method's frame is unwound by its size, to its
	// interpreted caller (samples taken before the map was read are
	// not).
	var withCaller, all int64
	for _, s := range res.Profile.Stacks {
		if s.TID != tid {
			continue
		}
		all += s.Count
		for i, f := range s.Frames {
			if f.Function == "Hot.computeLoop" && i+1 < len(s.Frames) && s.Frames[i+1].Function == "Hot.main (interpreted)" {
				withCaller += s.Count
				break
			}
		}
	}
	if all == 0 || withCaller*2 < all {
		_, hot := leafShare(res, tid, hotspot.Kind, "")
		t.Errorf("%d of %d samples have Hot.main (interpreted) as Hot.computeLoop's caller, want most; hottest: %s", withCaller, all, hot)
	}
	if _, err := os.Stat(fmt.Sprintf("/tmp/.attach_pid%d", j.pid)); err == nil {
		t.Errorf("the attach trigger file was left behind")
	}
	time.Sleep(200 * time.Millisecond)
	if out := j.output(); out != "" {
		t.Errorf("the JVM printed %q after ready", out)
	}
}

// TestInterpreted: a method too large for the JIT runs in the
// interpreter, whose code the JVM's map names "Interpreter"; each
// interpreted frame is named by its method, read from the frame and
// HotSpot's VMStructs, and so is its interpreted caller.
func TestInterpreted(t *testing.T) {
	j := startJVM(t, "huge")
	tid := mainThread(t, j.pid)
	res := record(t, j.pid, false)
	if share, hot := leafShare(res, tid, hotspot.Kind, "Huge.hugeLoop (interpreted)"); share < 0.8 {
		t.Errorf("%.0f%% of the main thread's samples end in Huge.hugeLoop (interpreted), want >= 80%%; hottest: %s; notes %q", 100*share, hot, res.Notes)
	}
	var withCaller int64
	for _, s := range res.Profile.Stacks {
		for i, f := range s.Frames {
			if f.Function == "Huge.hugeLoop (interpreted)" && i+1 < len(s.Frames) && s.Frames[i+1].Function == "Hot.main (interpreted)" {
				withCaller += s.Count
				break
			}
		}
	}
	if withCaller == 0 {
		t.Errorf("no stack has Hot.main (interpreted) as Huge.hugeLoop's caller")
	}
}

// TestNoAttach: with --no-attach the JVM is not asked (no socket, no
// map), its compiled code is not named, and a note says why.
func TestNoAttach(t *testing.T) {
	j := startJVM(t, "compute")
	tid := mainThread(t, j.pid)
	res := record(t, j.pid, true)
	if share, hot := leafShare(res, tid, hotspot.Kind, "Hot.computeLoop"); share > 0 {
		t.Errorf("%.0f%% of samples named Hot.computeLoop with --no-attach: %s", 100*share, hot)
	}
	if !hasNote(res, "--no-attach forbids") {
		t.Errorf("no note says --no-attach left the code unnamed: %q", res.Notes)
	}
	for _, f := range []string{"/tmp/.java_pid%d", "/tmp/perf-%d.map"} {
		if _, err := os.Stat(fmt.Sprintf(f, j.pid)); err == nil {
			t.Errorf("%s exists: the JVM was asked", fmt.Sprintf(f, j.pid))
		}
	}
}

// TestStaleMap: a map older than the JVM (an earlier process's with the
// same PID) names nothing, even where its addresses cover the JVM's
// code: with --no-attach the code stays unnamed, with a note; asked,
// the JVM writes its own over it.
func TestStaleMap(t *testing.T) {
	j := startJVM(t, "compute")
	tid := mainThread(t, j.pid)
	path := fmt.Sprintf("/tmp/perf-%d.map", j.pid)
	// One symbol over all of the address space below the kernel's.
	if err := os.WriteFile(path, []byte("0 7fffffffffff void Wrong.method()\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	res := record(t, j.pid, true)
	if share, hot := leafShare(res, tid, hotspot.Kind, "Wrong.method"); share > 0 {
		t.Errorf("the stale map named %.0f%% of the samples: %s", 100*share, hot)
	}
	if !hasNote(res, "older than the process") {
		t.Errorf("no note says the map is stale: %q", res.Notes)
	}
	res = record(t, j.pid, false)
	if share, hot := leafShare(res, tid, hotspot.Kind, "Hot.computeLoop"); share < 0.8 {
		t.Errorf("asked, %.0f%% of samples end in Hot.computeLoop, want >= 80%%: %s; notes %q", 100*share, hot, res.Notes)
	}
}

// TestNoAttachInterpreted: with --no-attach, the interpreter is known by
// its code's range in the JVM (HotSpot's VMStructs), and its frames are
// named by their methods all the same; the JVM is not asked.
func TestNoAttachInterpreted(t *testing.T) {
	j := startJVM(t, "huge")
	tid := mainThread(t, j.pid)
	res := record(t, j.pid, true)
	if share, hot := leafShare(res, tid, hotspot.Kind, "Huge.hugeLoop (interpreted)"); share < 0.8 {
		t.Errorf("%.0f%% of the main thread's samples end in Huge.hugeLoop (interpreted), want >= 80%%; hottest: %s; notes %q", 100*share, hot, res.Notes)
	}
	for _, f := range []string{"/tmp/.java_pid%d", "/tmp/perf-%d.map"} {
		if _, err := os.Stat(fmt.Sprintf(f, j.pid)); err == nil {
			t.Errorf("%s exists: the JVM was asked", fmt.Sprintf(f, j.pid))
		}
	}
}

// TestNamespaces: a JVM that is PID 1 of a PID namespace of its own, with
// a /tmp of its own (a tmpfs in its mount namespace), as in a container:
// the trigger file, the socket and the map are the JVM's, named by the
// PID it sees (/tmp/.java_pid1, /tmp/perf-1.map) and reached through its
// root; nothing is left in the host's /tmp.
func TestNamespaces(t *testing.T) {
	if _, err := exec.LookPath("java"); err != nil {
		privtest.Require(t, "java is not installed (apt-get install openjdk-17-jdk-headless)")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		privtest.Require(t, "unshare is not installed (util-linux)")
	}
	p := scenario.Build(t, "javahot")
	cmd := exec.Command("unshare", "--pid", "--fork", "--mount", "--propagation", "private", "--mount-proc",
		"sh", "-c", `mount -t tmpfs tmpfs /tmp && exec "$0" compute`, p.Path)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	t.Cleanup(func() {
		if pid != 0 {
			syscall.Kill(pid, syscall.SIGKILL) // the namespace's PID 1
		}
		cmd.Process.Kill()
		cmd.Wait()
	})
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err == nil && line != "ready\n" {
			err = fmt.Errorf("first line %q", line)
		}
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the JVM did not print ready")
	}
	children, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Sscan(string(children), &pid); err != nil {
		t.Fatalf("unshare's child: %q: %v", children, err)
	}
	if ns := (proc.FS{}).Identity(pid).NsPID; ns != 1 {
		t.Fatalf("the JVM is PID %d in its namespace, want 1", ns)
	}
	tid := mainThread(t, pid)
	res := record(t, pid, false)
	if share, hot := leafShare(res, tid, hotspot.Kind, "Hot.computeLoop"); share < 0.8 {
		t.Errorf("%.0f%% of the main thread's samples end in Hot.computeLoop, want >= 80%%; hottest: %s; notes %q", 100*share, hot, res.Notes)
	}
	if !hasNote(res, "/tmp/perf-1.map") {
		t.Errorf("no note names the map the JVM wrote as it sees it (/tmp/perf-1.map): %q", res.Notes)
	}
	for _, f := range []string{"/tmp/.java_pid1", "/tmp/.attach_pid1", "/tmp/perf-1.map", fmt.Sprintf("/tmp/perf-%d.map", pid)} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("%s is in the host's /tmp", f)
		}
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d/root/tmp/perf-1.map", pid)); err != nil {
		t.Errorf("the JVM's own /tmp has no perf-1.map: %v", err)
	}
}
