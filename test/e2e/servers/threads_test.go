package servers

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/diagnose"
	"github.com/cpuwhy/cpuwhy/internal/flame"
	"github.com/cpuwhy/cpuwhy/internal/stack/python"
	"github.com/cpuwhy/cpuwhy/internal/verdict"
	"github.com/cpuwhy/cpuwhy/test/containertest"
	"github.com/cpuwhy/cpuwhy/test/privtest"
)

// pythonHTTP is Python's http.server, which starts a thread per
// connection (ThreadingHTTPServer), driven by wrk: wrk's HTTP/1.1
// connections are closed by the server after each response (it speaks
// HTTP/1.0), so every request is a new connection and a new thread.
// Debian's python3, by its path: the one on PATH may be another build
// (pyenv's, on these machines), and Debian's is the stripped interpreter
// users run, its standard library in /usr/lib/python3.*.
var pythonHTTP = server{
	name:     "python http.server",
	binaries: []string{"/usr/bin/python3", "wrk"},
	packages: "python3 wrk",
	port:     8000,
	start: func(t *testing.T, dir string) *exec.Cmd {
		writeFile(t, filepath.Join(dir, "index.html"), "<p>a page served to wrk by python, for cpuwhy</p>\n")
		return exec.Command("/usr/bin/python3", "-m", "http.server", "8000", "--bind", "127.0.0.1", "--directory", dir)
	},
	client:     []string{"wrk", "-t1", "-c10", "-d60s", "http://127.0.0.1:8000/index.html"},
	candidates: func(t *testing.T, pid int) []int { return []int{pid} },
	rate:       regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`),
}

// TestThreadPerRequest diagnoses python's http.server under wrk: a
// thread started and ended for every request. The verdict must name the
// churn (thread_churn), the thread table with its row of exited threads
// must add up to the process's CPU, the threads that lived a request
// must not be taken for contenders of a lock, and no call may go
// uncounted without the report saying so.
func TestThreadPerRequest(t *testing.T) {
	for _, b := range pythonHTTP.binaries {
		if lookPath(b) == "" {
			privtest.Require(t, fmt.Sprintf("%s is not installed (apt-get install %s)", b, pythonHTTP.packages))
		}
	}
	srv := pythonHTTP
	l := newLoad(t, srv)
	defer l.stop(t)
	res := diagnoseWithProfile(t, l.pid)
	r := res.Report
	l.stop(t)
	checkPythonFrames(t, res.Profile)

	var text bytes.Buffer
	if err := diagnose.WriteText(&text, r, diagnose.TextOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Logf("cpuwhy %d said:\n%s", l.pid, text.String())

	if r.Target.CPU < verdict.BusyCPU {
		t.Fatalf("the server used %.1f%% of a core in the window, less than cpuwhy calls busy: the load did not hold", r.Target.CPU)
	}
	var sum float64
	for _, th := range r.Threads {
		sum += th.CPU
	}
	// Rows are rounded to 0.1 each, and the live threads' ticks and
	// the process's are truncated apart: a few points.
	if d := r.Target.CPU - sum; d > 3 || d < -3 {
		t.Errorf("the thread table sums to %.1f%% of a core, the header says %.1f%%", sum, r.Target.CPU)
	}
	got := map[verdict.Pattern]bool{}
	for _, v := range r.Verdicts {
		got[v.Pattern] = true
	}
	if !got[verdict.ThreadChurn] {
		t.Errorf("verdicts %v, want thread_churn", r.Verdicts)
	}
	if got[verdict.LockContention] {
		t.Errorf("lock_contention among threads that each lived one request")
	}
	for _, v := range r.Verdicts {
		if v.Pattern.Outside() {
			// A cause outside the server's code (a loaded machine
			// starving it): not a verdict on its code.
			t.Logf("outside the server's code: %s: %s", v.Pattern, v.Summary)
			continue
		}
		if v.Pattern != verdict.Healthy && v.Pattern != verdict.ThreadChurn && v.Pattern != verdict.ComputeLoop {
			t.Errorf("false verdict %s on thread %s: %s", v.Pattern, v.Thread.Name, v.Summary)
		}
	}
	for _, n := range r.Notes {
		if strings.Contains(n, "not counted") && !strings.Contains(n, "affected") {
			t.Errorf("calls lost without saying what they affect: %q", n)
		}
	}
}

// load is a server running under its client's load in a sandbox.
type load struct {
	pid       int
	client    *exec.Cmd
	clientOut bytes.Buffer
	stopped   bool
	srv       server
}

// newLoad starts srv and its client in a sandbox, and waits for the
// server to be loaded.
func newLoad(t *testing.T, srv server) *load {
	box := containertest.NewSandbox(t)
	dir, err := os.MkdirTemp("", "cpuwhy-"+strings.Fields(srv.name)[0]+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cmd := srv.start(t, dir)
	var serverOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &serverOut, &serverOut
	cmd.WaitDelay = time.Second
	if err := box.Start(cmd); err != nil {
		t.Fatal(err)
	}
	if err := waitListening(cmd.Process.Pid, srv.port, 10*time.Second); err != nil {
		t.Fatalf("%v; %s says: %s", err, srv.name, serverOut.String())
	}
	l := &load{srv: srv}
	l.client = exec.Command(lookPath(srv.client[0]), srv.client[1:]...)
	var clientErr bytes.Buffer
	l.client.Stdout, l.client.Stderr = &l.clientOut, &clientErr
	l.client.WaitDelay = time.Second
	if err := box.Start(l.client); err != nil {
		t.Fatal(err)
	}
	pid, cpu, err := waitLoaded(srv.candidates(t, cmd.Process.Pid))
	if err != nil {
		t.Fatalf("%v; %s says: %s", err, srv.client[0], clientErr.String())
	}
	t.Logf("%s PID %d under load: %.0f%% of a core", srv.name, pid, cpu)
	l.pid = pid
	return l
}

// stop stops the client (wrk prints its summary on SIGINT) and logs its
// rate, once.
func (l *load) stop(t *testing.T) {
	if l.stopped {
		return
	}
	l.stopped = true
	l.client.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- l.client.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		l.client.Process.Kill()
		<-done
	}
	if m := l.srv.rate.FindAllStringSubmatch(l.clientOut.String(), -1); len(m) > 0 {
		t.Logf("load: %s requests/s (%s)", m[len(m)-1][1], strings.Join(l.srv.client, " "))
	}
}

// checkPythonFrames checks that the profile of Debian's python3 (stripped,
// its standard library in /usr/lib/python3.*, runpy frozen in) names the Python functions
// that ran: the server's request handling, in http/server.py and
// socketserver.py, must be among the frames, and most samples of the
// process's user code must be under a Python frame. Samples that have
// none are of threads starting or ending (the interpreter's C code
// before the first or after the last Python frame) and of the kernel
// alone.
func checkPythonFrames(t *testing.T, p *flame.Profile) {
	t.Helper()
	if p == nil {
		t.Fatal("the diagnosis kept no profile")
	}
	var user, named int64
	files := map[string]int64{}
	for _, s := range p.Stacks {
		hasUser, hasPython := false, false
		seen := map[string]bool{}
		for _, f := range s.Frames {
			if f.IsKernel() {
				continue
			}
			hasUser = true
			if f.Kind != python.Kind {
				continue
			}
			hasPython = true
			base := filepath.Base(f.File)
			// Frozen modules (runpy) name no file.
			if !strings.HasPrefix(f.File, "/usr/lib/python3") && !strings.HasPrefix(f.File, "<frozen ") {
				t.Errorf("a Python frame of Debian's standard library outside /usr/lib/python3*: %s in %q", f, f.File)
			}
			if !seen[base] {
				seen[base] = true
				files[base] += s.Count
			}
		}
		if hasUser {
			user += s.Count
		}
		if hasPython {
			named += s.Count
		}
	}
	t.Logf("%d of %d samples with user frames under a Python frame; samples by file: %v", named, user, files)
	// The request threads live less than the sampler's rereading of
	// the thread list and are mostly not sampled (package sample's
	// TestRecordRescanFindsThreads says why): the samples are the main
	// thread's, 10-28 in a window here, which a loaded machine may
	// starve to a few.
	if user < 5 {
		t.Logf("%d samples of the server's user code: too few to judge its Python frames", user)
		return
	}
	if 2*named < user {
		t.Errorf("%d of %d samples of the server's user code named by a Python frame, want half at least", named, user)
	}
	for _, f := range []string{"server.py", "socketserver.py"} {
		if files[f] == 0 {
			t.Errorf("no sample under a Python function of %s, the server's request handling", f)
		}
	}
}
