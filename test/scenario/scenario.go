package scenario

import (
	"bufio"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

//go:embed testdata
var sources embed.FS

// Program is a built scenario.
type Program struct {
	Name  string            // scenario name
	Path  string            // host path of the built main binary
	Files map[string]string // other files that must sit beside the binary (basename -> host path)
}

// recipe says how to build one scenario from testdata/<name>/. Commands
// run in a directory holding a copy of the sources, so outputs land
// beside each other, which busypoll's rpath $ORIGIN relies on.
type recipe struct {
	main   string     // the binary to run
	files  []string   // other outputs that must sit beside it
	cmds   [][]string // command lines (gcc, g++, go), run in order
	shared []string   // files under testdata/include/ copied beside the sources
}

// sharedDir holds sources that several scenarios include (recipe.shared).
// It is not a scenario: no recipe is named for it.
const sharedDir = "testdata/include/"

var recipes = map[string]recipe{
	"busypoll": {
		main:  "vpnserver",
		files: []string{"libnat.so"},
		cmds: [][]string{
			{"gcc", "-O2", "-fomit-frame-pointer", "-Wall", "-fPIC", "-shared",
				"-o", "libnat.so", "libnat.c"},
			// -s: a release build without .symtab, as in the report,
			// where gdb could show no more than the dynamic symbols.
			{"gcc", "-O2", "-fomit-frame-pointer", "-Wall", "-s", "-pthread",
				"-o", "vpnserver", "vpnserver.c", "-L.", "-lnat", "-Wl,-rpath,$ORIGIN"},
		},
		shared: []string{"scenario.h"},
	},
	"cxxhot": {
		main: "cxxhot",
		cmds: [][]string{{"g++", "-O2", "-g", "-Wall", "-pthread", "-o", "cxxhot", "session.cc"}},
	},
	"gostripped": {
		main: "gostripped",
		// Outside any module: the copied sources hold no go.mod (one
		// would keep the directory out of the embedded testdata).
		cmds: [][]string{{"go", "build", "-trimpath", "-ldflags=-s -w", "-o", "gostripped", "main.go"}},
	},
	"compute": {
		main: "compute",
		cmds: [][]string{{"gcc", "-O2", "-g", "-Wall", "-pthread", "-o", "compute", "compute.c"}},
	},
	"idle": {
		main: "idle",
		cmds: [][]string{{"gcc", "-O2", "-Wall", "-pthread", "-o", "idle", "idle.c"}},
	},
	"refused": {
		main:   "refused",
		cmds:   [][]string{{"gcc", "-O2", "-Wall", "-pthread", "-o", "refused", "refused.c"}},
		shared: []string{"scenario.h"},
	},
	"spawner": {
		main: "spawner",
		cmds: [][]string{{"gcc", "-O2", "-Wall", "-pthread", "-o", "spawner", "spawner.c"}},
	},
	"hostile": {
		main: "hostile",
		cmds: [][]string{
			{"gcc", "-O2", "-g", "-fno-omit-frame-pointer", "-Wall", "-pthread", "-o", "hostile", "hostile.c"},
			// A symbol name no compiler writes: an escape sequence, a
			// newline and a byte of invalid UTF-8.
			{"objcopy", "--redefine-sym", "burn=" + HostileSymbol, "hostile"},
		},
	},
	"jitmap": {
		main: "jitmap",
		cmds: [][]string{{"gcc", "-O2", "-g", "-fno-omit-frame-pointer", "-Wall", "-pthread", "-o", "jitmap", "jitmap.c"}},
	},
	"leaderexit": {
		main: "leaderexit",
		cmds: [][]string{{"gcc", "-O2", "-Wall", "-pthread", "-o", "leaderexit", "leaderexit.c"}},
	},
	"tracer": {
		main: "tracer",
		cmds: [][]string{{"gcc", "-O2", "-Wall", "-o", "tracer", "tracer.c"}},
	},
	"execphase": {
		main:  "execphase",
		files: []string{"phasetwo"},
		cmds: [][]string{
			{"gcc", "-O2", "-g", "-fno-omit-frame-pointer", "-Wall", "-pthread", "-o", "execphase", "execphase.c"},
			{"gcc", "-O2", "-g", "-fno-omit-frame-pointer", "-Wall", "-DPHASE_TWO", "-o", "phasetwo", "execphase.c"},
		},
	},
	"exitontrace": {
		main: "exitontrace",
		cmds: [][]string{{"gcc", "-O2", "-Wall", "-pthread", "-o", "exitontrace", "exitontrace.c"}},
	},
	"threads": {
		main: "threads",
		cmds: [][]string{{"gcc", "-O2", "-Wall", "-pthread", "-o", "threads", "threads.c"}},
	},
	"exactcalls": {
		main: "exactcalls",
		cmds: [][]string{{"gcc", "-O2", "-Wall", "-pthread", "-o", "exactcalls", "exactcalls.c"}},
	},
	"gcpressure": {
		main: "gcpressure",
		// Not stripped: symbols and DWARF kept (gostripped is the
		// stripped case).
		cmds: [][]string{{"go", "build", "-trimpath", "-o", "gcpressure", "main.go"}},
	},
	"javahot": {
		// A JVM (javac and java from openjdk-17-jdk-headless): compute,
		// huge, gc and jit modes, run by the launcher script with no
		// flag but the heap's size (and -Xcomp for jit).
		main:  "javahot",
		files: []string{"Hot.class", "Huge.class", "work/Work.class"},
		cmds: [][]string{{"java", "Gen.java"}, {"javac", "-d", ".", "Hot.java", "Huge.java"},
			{"javac", "-d", "work", "work/Work.java"}},
	},
	"nodehot": {
		// node (nodejs): compute and callback modes of ledger.js, run
		// by the launcher script with no flag. The sources are copied
		// without their modes: node makes the launcher executable.
		main:  "nodehot",
		files: []string{"ledger.js"},
		cmds:  [][]string{{"node", "-e", "require('fs').chmodSync('nodehot', 0o755)"}},
	},
	// The pattern scenarios: each pathology, and with a RATE its healthy
	// twin, the other side of the threshold.
	"churn":       pattern("churn"),
	"echoserver":  pattern("echoserver"),
	"kernelbound": pattern("kernelbound"),
	"lockstorm":   pattern("lockstorm"),
	"spinyield":   pattern("spinyield"),
	"timerstorm":  pattern("timerstorm"),
	"udpflood":    pattern("udpflood"),
	"writestorm":  pattern("writestorm"),
	"zeropoll":    pattern("zeropoll"),
}

// HostileSymbol is the name the hostile scenario's burn function has in
// its symbol table, where its thread spends its CPU.
const HostileSymbol = "burn\x1b]0;SYM\a\nforged\xff"

// pattern is the recipe of a C scenario built from testdata/name/name.c
// with scenario.h. It keeps symbols, DWARF and frame pointers, so that
// every way of taking a stack (eBPF's frame-pointer walk, DWARF
// unwinding) names the function each was written to be seen in.
func pattern(name string) recipe {
	return recipe{
		main: name,
		cmds: [][]string{{"gcc", "-O2", "-g", "-fno-omit-frame-pointer", "-Wall", "-pthread",
			"-o", name, name + ".c"}},
		shared: []string{"scenario.h"},
	}
}

// Names returns the scenario names, sorted.
func Names() []string {
	names := make([]string, 0, len(recipes))
	for name := range recipes {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

type build struct {
	once sync.Once
	dir  string
	err  error
}

var (
	buildsMu sync.Mutex
	builds   = map[string]*build{}
)

// ErrUnknown is returned by Compile for a name that is not a scenario.
var ErrUnknown = errors.New("unknown scenario")

// Build returns the named scenario, compiling it on first use. It fails
// the test if the scenario is unknown or does not build.
func Build(tb testing.TB, name string) Program {
	tb.Helper()
	p, err := Compile(name)
	if err != nil {
		tb.Fatalf("%v", err)
	}
	return p
}

// Compile is Build for programs that are not tests, such as the
// benchmarks under bench/: it returns the error instead of failing a test.
func Compile(name string) (Program, error) {
	r, ok := recipes[name]
	if !ok {
		return Program{}, fmt.Errorf("%w %q (have %s)", ErrUnknown, name, strings.Join(Names(), ", "))
	}
	buildsMu.Lock()
	b := builds[name]
	if b == nil {
		b = &build{}
		builds[name] = b
	}
	buildsMu.Unlock()
	b.once.Do(func() { b.dir, b.err = buildCached(name, r) })
	if b.err != nil {
		return Program{}, fmt.Errorf("building scenario %s: %w", name, b.err)
	}
	p := Program{Name: name, Path: filepath.Join(b.dir, r.main), Files: map[string]string{}}
	for _, f := range r.files {
		p.Files[f] = filepath.Join(b.dir, f)
	}
	return p, nil
}

// buildCached returns the directory holding the built scenario, building
// it unless an identical build is already cached.
func buildCached(name string, r recipe) (string, error) {
	key, err := cacheKey(name, r)
	if err != nil {
		return "", err
	}
	parent, err := cacheDir()
	if err != nil {
		return "", err
	}
	final := filepath.Join(parent, name+"-"+key)
	if _, err := os.Stat(filepath.Join(final, r.main)); err == nil {
		return final, nil
	}
	tmp, err := os.MkdirTemp(parent, name+".tmp-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	if err := compile(name, r, tmp); err != nil {
		return "", err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, final); err != nil {
		// Another process finished the same build first: use it.
		if _, statErr := os.Stat(filepath.Join(final, r.main)); statErr == nil {
			return final, nil
		}
		return "", err
	}
	return final, nil
}

// cacheDir returns the scenario cache, in the user's cache directory or,
// for users without a usable home (nobody), in the temporary directory.
func cacheDir() (string, error) {
	var errs []error
	for _, base := range []func() (string, error){os.UserCacheDir, func() (string, error) { return os.TempDir(), nil }} {
		dir, err := base()
		if err == nil {
			dir = filepath.Join(dir, "cpuwhy", "scenario")
			if err = os.MkdirAll(dir, 0o755); err == nil {
				return dir, nil
			}
		}
		errs = append(errs, err)
	}
	return "", fmt.Errorf("no cache directory for scenarios: %w", errors.Join(errs...))
}

func compile(name string, r recipe, dir string) error {
	srcs, err := fs.Sub(sources, "testdata/"+name)
	if err != nil {
		return err
	}
	if err := os.CopyFS(dir, srcs); err != nil {
		return fmt.Errorf("copying sources: %w", err)
	}
	for _, name := range r.shared {
		data, err := sources.ReadFile(sharedDir + name)
		if err != nil {
			return fmt.Errorf("copying shared source: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("copying shared source: %w", err)
		}
	}
	for _, args := range r.cmds {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = dir
		if args[0] == "go" {
			// A build of its own: no workspace or flags of the caller's.
			cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=", "GO111MODULE=on", "CGO_ENABLED=0")
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w\n%s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// cacheKey hashes everything a build depends on: the sources, the
// commands and the compiler.
func cacheKey(name string, r recipe) (string, error) {
	h := sha256.New()
	seen := map[string]bool{}
	for _, args := range r.cmds {
		if seen[args[0]] {
			continue
		}
		seen[args[0]] = true
		version, err := toolVersion(args[0])
		if err != nil {
			return "", err
		}
		h.Write(version)
	}
	fmt.Fprintf(h, "%q %q %q\n", r.main, r.files, r.cmds)
	hashFile := func(path string) error {
		data, err := sources.ReadFile(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %d\n", path, len(data))
		h.Write(data)
		return nil
	}
	err := fs.WalkDir(sources, "testdata/"+name, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return hashFile(path)
	})
	if err != nil {
		return "", err
	}
	for _, f := range r.shared {
		if err := hashFile(sharedDir + f); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// toolVersion returns what a build tool says of its version, which is
// part of a build's cache key.
func toolVersion(tool string) ([]byte, error) {
	arg := "--version"
	if tool == "go" {
		arg = "version"
	}
	out, err := exec.Command(tool, arg).Output()
	if err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			return nil, fmt.Errorf("%s %s: %w\n%s", tool, arg, err, exitErr.Stderr)
		}
		return nil, fmt.Errorf("%s is needed to build scenarios: %w", tool, err)
	}
	return out, nil
}

// Start runs the program on the host with env added to the test's
// environment, and waits for its "ready" line. The process is killed and
// reaped when the test ends.
func (p Program) Start(t testing.TB, env []string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(p.Path, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", p.Name, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		// What a runtime leaves in /tmp under the PID of a process
		// killed so: a JVM's attach socket, a perf map (cpuwhy asks a
		// JVM to write one).
		for _, f := range []string{"/tmp/perf-%d.map", "/tmp/.java_pid%d", "/tmp/.attach_pid%d"} {
			os.Remove(fmt.Sprintf(f, cmd.Process.Pid))
		}
	})
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err == nil && line != "ready\n" {
			err = errors.New("first line is " + strconv.Quote(line))
		}
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("%s did not become ready: %v", p.Name, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not print ready within 10s", p.Name)
	}
	return cmd
}

// OtherThread returns a TID of process pid other than pid itself, waiting
// up to 5 s for the process to start one.
func OtherThread(tb testing.TB, pid int) int {
	tb.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			tb.Fatal(err)
		}
		for _, task := range tasks {
			if tid, _ := strconv.Atoi(task.Name()); tid != pid {
				return tid
			}
		}
	}
	tb.Fatalf("PID %d never started a second thread", pid)
	return 0
}
