package cli

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/pprof/profile"

	"github.com/cpuwhy/cpuwhy/test/privtest"
)

// startPython runs internal/stack/python's target.py in mode poll (a
// thread polling a non-blocking socket in drain) under the newest
// CPython of this machine, until the test ends.
func startPython(t *testing.T, args ...string) (pid int, drainLine int) {
	t.Helper()
	var py string
	for _, g := range []string{"/root/.pyenv/versions/3.13.*/bin/python3.13", "/root/.pyenv/versions/3.12.*/bin/python3.12", "/usr/bin/python3.11"} {
		if m, _ := filepath.Glob(g); len(m) > 0 {
			py = m[0]
			break
		}
	}
	if py == "" {
		privtest.Require(t, "no CPython 3.11+ (apt-get install python3.11)")
	}
	return startPythonWith(t, py, args...)
}

// pythons are the CPythons of this machine cpuwhy reads: pyenv's 3.8 to
// 3.13 and Debian's python3.11, by name; "" for an absent one.
func pythons() map[string]string {
	out := map[string]string{"debian-3.11": "/usr/bin/python3.11"}
	if _, err := os.Stat(out["debian-3.11"]); err != nil {
		out["debian-3.11"] = ""
	}
	for minor := 8; minor <= 13; minor++ {
		v := "3." + strconv.Itoa(minor)
		out["pyenv-"+v] = ""
		if m, _ := filepath.Glob("/root/.pyenv/versions/" + v + ".*/bin/python" + v); len(m) > 0 {
			out["pyenv-"+v] = m[0]
		}
	}
	return out
}

// startPythonWith runs target.py with args under the CPython py.
func startPythonWith(t *testing.T, py string, args ...string) (pid int, drainLine int) {
	t.Helper()
	script, _ := filepath.Abs("../stack/python/testdata/target.py")
	src, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range strings.Split(string(src), "\n") {
		if strings.HasSuffix(l, "# line:drain") {
			drainLine = i + 1
		}
	}
	if len(args) == 0 {
		args = []string{"poll"}
	}
	cmd := exec.Command(py, append([]string{script}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("%s: %q, %v", py, line, err)
	}
	return cmd.Process.Pid, drainLine
}

// TestPythonFramesEverywhere: the diagnosis, record in every format and
// dump name a Python service's frames as qualname (file.py:line), through
// the runtime the commands link in.
func TestPythonFramesEverywhere(t *testing.T) {
	pid, line := startPython(t)
	p := strconv.Itoa(pid)
	want := "drain (target.py:" + strconv.Itoa(line) + ")"
	dir := t.TempDir()

	for _, out := range []string{"p.folded", "p.html"} {
		path := filepath.Join(dir, out)
		if code, _, errOut := runBinary(t, nil, "record", "-d", "2s", "-o", path, p); code != 0 {
			t.Fatalf("record: exit %d: %s", code, errOut)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), want) {
			t.Errorf("record -o %s has no frame %s", out, want)
		}
	}

	// pprof carries the position in its own fields.
	pb := filepath.Join(dir, "p.pb.gz")
	if code, _, errOut := runBinary(t, nil, "record", "-d", "2s", "-o", pb, p); code != 0 {
		t.Fatalf("record: exit %d: %s", code, errOut)
	}
	f, err := os.Open(pb)
	if err != nil {
		t.Fatal(err)
	}
	prof, err := profile.Parse(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, l := range prof.Location {
		for _, ln := range l.Line {
			if ln.Function != nil && ln.Function.Name == "drain" && filepath.Base(ln.Function.Filename) == "target.py" && ln.Line == int64(line) {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("the pprof profile has no location in drain at target.py:%d", line)
	}

	var dump struct {
		Threads []struct {
			Frames []string `json:"frames"`
		} `json:"threads"`
	}
	runJSON(t, &dump, "dump", "--json", p)
	// dump names the frames just after it let the thread go: by then the
	// loop may be at the except or pass below the call.
	inDrain := regexp.MustCompile(`^drain \(target\.py:(` + strconv.Itoa(line) + "|" + strconv.Itoa(line+1) + "|" + strconv.Itoa(line+2) + `)\)$`)
	if len(dump.Threads) != 1 || !slices.ContainsFunc(dump.Threads[0].Frames, inDrain.MatchString) {
		t.Errorf("dump: %q, want a frame drain (target.py:%d-%d)", dump.Threads, line, line+2)
	}

	var diag struct {
		Verdicts []struct {
			Pattern string   `json:"pattern"`
			Stack   []string `json:"stack"`
		} `json:"verdicts"`
	}
	runJSON(t, &diag, "-d", "2s", "--json", p)
	if len(diag.Verdicts) == 0 || !strings.Contains(strings.Join(diag.Verdicts[0].Stack, "\n"), want) {
		t.Errorf("diagnosis: %+v, want a verdict whose stack has %s", diag.Verdicts, want)
	}
}

// TestPythonVerdicts: on every CPython of the machine, the diagnosis
// of a Python process names its pattern by its Python code: the compute
// loop by its method (qualified from 3.11), the busy poll by its Python
// caller, threads taking turns on the GIL by the one holding it and
// those starved of it.
func TestPythonVerdicts(t *testing.T) {
	for name, py := range pythons() {
		t.Run(name, func(t *testing.T) {
			if py == "" {
				privtest.Require(t, "no CPython "+name+" on this machine (pyenv install, or apt-get install python3.11)")
			}
			method := "Indexer.rebuild"
			if strings.HasPrefix(name, "pyenv-3.") && !strings.HasPrefix(name, "pyenv-3.1") || name == "pyenv-3.10" {
				method = "rebuild" // co_qualname is 3.11's
			}
			for _, c := range []struct {
				args    []string
				pattern string
				want    []string
			}{
				{[]string{"compute"}, "compute_loop", []string{"computes in Python, in " + method + " at line", "of target.py"}},
				{[]string{"poll"}, "busy_poll", []string{"the Python caller is drain (target.py:"}},
				{[]string{"threads", "4"}, "gil_contention", []string{"4 Python threads want the CPU but take turns on the GIL", "in worker (target.py:", "starved of the GIL", "the GIL, read from the interpreter every 10 ms ("}},
			} {
				t.Run(c.pattern, func(t *testing.T) {
					pid, _ := startPythonWith(t, py, c.args...)
					var diag struct {
						Verdicts []struct {
							Pattern  string   `json:"pattern"`
							Summary  string   `json:"summary"`
							Evidence []string `json:"evidence"`
							Code     any      `json:"code"`
						} `json:"verdicts"`
					}
					runJSON(t, &diag, "-d", "3s", "--json", strconv.Itoa(pid))
					if len(diag.Verdicts) == 0 {
						t.Fatal("no verdict")
					}
					v := diag.Verdicts[0]
					text := v.Summary + "\n" + strings.Join(v.Evidence, "\n")
					t.Logf("%s: %s", v.Pattern, text)
					if v.Pattern != c.pattern {
						t.Fatalf("pattern %s, want %s", v.Pattern, c.pattern)
					}
					for _, w := range c.want {
						if !strings.Contains(text, w) {
							t.Errorf("the verdict does not say %q", w)
						}
					}
					if v.Code != nil {
						t.Errorf("the verdict shows the interpreter's machine code")
					}
				})
			}
		})
	}
}

// TestPythonSyscallStacks: on every CPython of the machine, `syscalls
// --stacks --json` names the Python caller of a thread's recvfrom, at the
// line of the call, from the chain the tracer read with each stack: the
// frame-pointer walk alone stops in the interpreter's C code. Nearly all
// the sampled calls carry it (a thread's first calls, before the tracer
// was told of its thread state, might not; this one's thread runs from
// before the trace).
func TestPythonSyscallStacks(t *testing.T) {
	for name, py := range pythons() {
		t.Run(name, func(t *testing.T) {
			if py == "" {
				privtest.Require(t, "no CPython "+name+" on this machine (pyenv install, or apt-get install python3.11)")
			}
			pid, line := startPythonWith(t, py, "poll")
			var r struct {
				Stacks []struct {
					Syscall string   `json:"syscall"`
					Count   int      `json:"count"`
					Frames  []string `json:"frames"`
				} `json:"stacks"`
			}
			runJSON(t, &r, "syscalls", "--stacks", "-d", "1s", "--json", strconv.Itoa(pid))
			want := "drain (target.py:" + strconv.Itoa(line) + ")"
			var recv, named int
			for _, s := range r.Stacks {
				if s.Syscall != "recvfrom" {
					continue
				}
				recv += s.Count
				at := slices.Index(s.Frames, want)
				if at > 0 && strings.HasPrefix(s.Frames[len(s.Frames)-1], "<module> (target.py:") {
					named += s.Count
				} else {
					t.Logf("%d calls: %q", s.Count, s.Frames)
				}
			}
			t.Logf("%d of %d sampled recvfrom calls have %s", named, recv, want)
			if recv == 0 || named < recv*9/10 {
				t.Errorf("want 90%% of the sampled recvfrom calls with a native frame, then %s, ..., <module> (target.py:N); stacks %+v", want, r.Stacks)
			}
		})
	}
}
