package perfmap_test

import (
	"bufio"
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/cpuprofile"
	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/stack"
	"github.com/cpuwhy/cpuwhy/internal/stack/perfmap"
	"github.com/cpuwhy/cpuwhy/test/containertest"
	"github.com/cpuwhy/cpuwhy/test/privtest"
	"github.com/cpuwhy/cpuwhy/test/scenario"
)

func TestMain(m *testing.M) { containertest.Main(m) }

// record samples process pid (the host's PID) for d, as the commands do:
// the resolver under its PID in its own namespace, the runtimes
// registered (this package's among them). during runs once sampling has
// started.
func record(t *testing.T, pid int, d time.Duration, during func()) *cpuprofile.Result {
	t.Helper()
	ready := func() {}
	if during != nil {
		ready = func() { go during() }
	}
	res, err := cpuprofile.Record(context.Background(), pid, cpuprofile.Options{
		FS: proc.FS{}, Duration: d, NsPID: proc.FS{}.Identity(pid).NsPID, Ready: ready,
		// The map alone: node's frames would otherwise be named from
		// V8's objects first (package nodev8).
		Runtimes: []stack.Runtime{perfmap.Runtime{}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// share is the part of the samples whose stack has a frame the perf map
// named with a name that contains want.
func share(res *cpuprofile.Result, want string) float64 {
	var n, all int64
	for _, s := range res.Profile.Stacks {
		all += s.Count
		for _, f := range s.Frames {
			if f.Kind == perfmap.Kind && strings.Contains(f.Function, want) {
				n += s.Count
				break
			}
		}
	}
	if all == 0 {
		return 0
	}
	return float64(n) / float64(all)
}

// hottest is the hottest stack of the recording, for failure messages.
func hottest(res *cpuprofile.Result) string {
	var best []stack.Frame
	var most int64
	for _, s := range res.Profile.Stacks {
		if s.Count > most {
			best, most = s.Frames, s.Count
		}
	}
	names := make([]string, len(best))
	for i, f := range best {
		names[i] = fmt.Sprintf("%s [%s]", f.Name(), f.Kind)
	}
	return fmt.Sprintf("%d samples: %s", most, strings.Join(names, " <- "))
}

// wantNamed fails unless most samples ran in the function want, named by
// the perf map.
func wantNamed(t *testing.T, res *cpuprofile.Result, want string) {
	t.Helper()
	got := share(res, want)
	t.Logf("%.0f%% of %d samples in %s; hottest stack %s; notes %q", 100*got, res.Samples, want, hottest(res), res.Notes)
	if res.Samples < 10 || got < 0.8 {
		t.Errorf("%.0f%% of %d samples have a frame named %s by the perf map, want most", 100*got, res.Samples, want)
	}
}

func amd64(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skipf("unwinding is implemented for amd64 only, not %s", runtime.GOARCH)
	}
}

// TestJITMapContainer runs a hand-made JIT in a container, where it is
// PID 1 and writes /tmp/perf-1.map in the container's /tmp: the map is
// found through the process's root under the PID its namespace gives it,
// its later symbol wins over an earlier one at the same address, and what
// it appends while the recording runs is read.
func TestJITMapContainer(t *testing.T) {
	amd64(t)
	prog := scenario.Build(t, "jitmap")
	c := containertest.Start(t, containertest.Config{Program: prog.Path, Files: prog.Files})
	c.WaitReady(t, 10*time.Second)
	if id := (proc.FS{}).Identity(c.HostPID); id.NsPID != 1 || c.HostPID == 1 {
		t.Fatalf("the program is PID %d inside, %d outside: the test would not tell the two apart", id.NsPID, c.HostPID)
	}
	if _, err := os.Stat("/tmp/perf-1.map"); err == nil {
		t.Log("the host has a /tmp/perf-1.map too: it must not be the one read")
	}

	// Half the window in jit_first, then the JIT recompiles into new
	// memory and appends jit_second.
	switched := make(chan error, 1)
	res := record(t, c.HostPID, 2*time.Second, func() {
		time.Sleep(time.Second)
		switched <- syscall.Kill(c.HostPID, syscall.SIGUSR1)
	})
	if err := <-switched; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.Output(), "switched") {
		t.Fatalf("the JIT did not switch: output %q", c.Output())
	}
	first, second, decoy := share(res, "jit_first"), share(res, "jit_second"), share(res, "jit_decoy")
	t.Logf("%d samples: jit_first %.0f%%, jit_second %.0f%%, jit_decoy %.0f%%; hottest %s; notes %q",
		res.Samples, 100*first, 100*second, 100*decoy, hottest(res), res.Notes)
	if res.Samples < 20 || first < 0.2 || second < 0.2 || first+second < 0.9 {
		t.Errorf("want nearly every sample in jit_first or jit_second, a good part in each")
	}
	if decoy > 0 {
		t.Errorf("%.0f%% of samples named jit_decoy, which a later line replaced", 100*decoy)
	}
	// The JIT's frame keeps a frame pointer: the stack goes on to the
	// thread's start through the program's own frames.
	if float64(res.UnwoundToStart) < 0.9*float64(res.Samples) {
		t.Errorf("%d of %d samples unwound to the thread's start, want nearly all", res.UnwoundToStart, res.Samples)
	}
	for _, n := range res.Notes {
		if strings.Contains(n, "perf") {
			t.Errorf("note about a map that was read whole: %q", n)
		}
	}
}

// TestNoMap: a process that runs anonymous code and writes no map is
// told of once, with how to get one.
func TestNoMap(t *testing.T) {
	amd64(t)
	prog := scenario.Build(t, "jitmap")
	cmd := prog.Start(t, nil, "nomap")
	res := record(t, cmd.Process.Pid, time.Second, nil)
	var notes []string
	for _, n := range res.Notes {
		if strings.Contains(n, "perf map") {
			notes = append(notes, n)
		}
	}
	want := fmt.Sprintf("/tmp/perf-%d.map", cmd.Process.Pid)
	if len(notes) != 1 || !strings.Contains(notes[0], want) || !strings.Contains(notes[0], "--perf-basic-prof") {
		t.Errorf("notes %q, want one about %s", res.Notes, want)
	}
}

// node finds node, which CI installs (nodejs).
func node(t *testing.T) string {
	path, err := exec.LookPath("node")
	if err != nil {
		privtest.Require(t, "node is not installed (apt-get install nodejs)")
	}
	return path
}

// python finds a CPython of version minor (3.12, 3.13): python3.12 in
// PATH or one built by pyenv. Its real path, an ELF file (not pyenv's
// shim script), since a container gets the file.
func python(t *testing.T, minor string) string {
	candidates, _ := filepath.Glob("/root/.pyenv/versions/" + minor + ".*/bin/python" + minor)
	if path, err := exec.LookPath("python" + minor); err == nil {
		candidates = append([]string{path}, candidates...)
	}
	for _, c := range candidates {
		real, err := filepath.EvalSymlinks(c)
		if err != nil {
			continue
		}
		if f, err := elf.Open(real); err == nil {
			f.Close()
			return real
		}
	}
	privtest.Require(t, "no python"+minor+" in PATH or under /root/.pyenv/versions")
	return ""
}

// startHost runs a program on the host until the test ends, once it said
// "ready", from a temporary directory (node writes its log there), and
// removes the perf map it leaves behind.
func startHost(t *testing.T, program string, args ...string) int {
	t.Helper()
	cmd := exec.Command(program, args...)
	cmd.Dir = t.TempDir()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		os.Remove(fmt.Sprintf("/tmp/perf-%d.map", cmd.Process.Pid))
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
			t.Fatalf("%s: %v", program, err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not print ready", program)
	}
	return cmd.Process.Pid
}

// warmUp lets a JIT compile the hot function before the recording: V8
// optimizes hotLoop within a second of running it.
const warmUp = time.Second

func TestNode(t *testing.T) {
	amd64(t)
	bin := node(t)
	script, _ := filepath.Abs("testdata/hot.js")
	t.Run("host", func(t *testing.T) {
		pid := startHost(t, bin, "--perf-basic-prof", script)
		time.Sleep(warmUp)
		// "JS:*hotLoop FILE:5:17" (V8 11+), "LazyCompile:*hotLoop ..."
		// (V8 10, in Debian 12's node 18), whatever the tier.
		wantNamed(t, record(t, pid, 2*time.Second, nil), "hotLoop "+script)
	})
	t.Run("container", func(t *testing.T) {
		c := containertest.Start(t, containertest.Config{
			Program: bin, Files: map[string]string{"hot.js": script},
			Args: []string{"--perf-basic-prof", "/opt/node/hot.js"},
		})
		c.WaitReady(t, 20*time.Second)
		time.Sleep(warmUp)
		wantNamed(t, record(t, c.HostPID, 2*time.Second, nil), "hotLoop /opt/node/hot.js")
	})
}

// wantPythonStack fails unless the samples of hot_python go on through
// its trampoline to the module's frame (py::<module>, its caller, named
// too) and on to the thread's start.
func wantPythonStack(t *testing.T, res *cpuprofile.Result, script string) {
	t.Helper()
	wantNamed(t, res, "py::hot_python:"+script)
	if got := share(res, "py::<module>:"+script); got < 0.8 {
		t.Errorf("%.0f%% of samples have the caller's frame py::<module>, want most: the trampoline was not unwound", 100*got)
	}
	if float64(res.UnwoundToStart) < 0.9*float64(res.Samples) {
		t.Errorf("%d of %d samples unwound to the thread's start, want nearly all", res.UnwoundToStart, res.Samples)
	}
}

// TestPython runs CPython with -X perf, where every Python function runs
// through a trampoline of its own that the map names, and that must be
// unwound through for the callers to appear.
func TestPython(t *testing.T) {
	amd64(t)
	script, _ := filepath.Abs("testdata/hot.py")
	for _, minor := range []string{"3.12", "3.13"} {
		t.Run(minor, func(t *testing.T) {
			bin := python(t, minor)
			t.Run("host", func(t *testing.T) {
				pid := startHost(t, bin, "-X", "perf", script)
				wantPythonStack(t, record(t, pid, 2*time.Second, nil), script)
			})
			t.Run("container", func(t *testing.T) {
				// The interpreter at its own path, with the few modules
				// it reads at start: os.py marks where its library is.
				bindir := filepath.Dir(bin)
				lib := filepath.Join(filepath.Dir(bindir), "lib", "python"+minor)
				files := map[string]string{}
				for _, f := range []string{"os.py", "encodings/__init__.py", "encodings/aliases.py", "encodings/utf_8.py"} {
					files[filepath.Join(lib, f)] = filepath.Join(lib, f)
				}
				c := containertest.Start(t, containertest.Config{
					Program: bin, Dir: bindir, Files: map[string]string{"hot.py": script},
					RootFiles: files, Dirs: []string{filepath.Join(lib, "lib-dynload")},
					Args: []string{"-X", "perf", filepath.Join(bindir, "hot.py")},
				})
				c.WaitReady(t, 20*time.Second)
				wantPythonStack(t, record(t, c.HostPID, 2*time.Second, nil), filepath.Join(bindir, "hot.py"))
			})
		})
	}
}
