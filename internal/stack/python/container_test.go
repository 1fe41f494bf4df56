package python_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/test/containertest"
	"github.com/cpuwhy/cpuwhy/test/privtest"
)

func TestMain(m *testing.M) { containertest.Main(m) }

// TestContainer runs Debian's python3.11 in a container of the test
// harness, at a path the host lacks (/opt/python3.11/python3.11), with
// the modules it loads at another (/srv/py/lib/python3.11, its
// PYTHONHOME), as PID 1 of its own PID namespace: the interpreter is read
// through the container's root, and its threads' ids, which it knows in
// its namespace, are matched to the host's.
func TestContainer(t *testing.T) {
	const py = "/usr/bin/python3.11"
	if _, err := os.Stat(py); err != nil {
		privtest.Require(t, "no "+py+" (apt-get install python3.11)")
	}
	// The modules target.py loads, as the host's python3.11 finds them.
	out, err := exec.Command(py, "-S", "-c", "import socket, threading, sys\n"+
		"for m in list(sys.modules.values()):\n f = getattr(m, '__file__', None)\n if f: print(f)").Output()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, f := range strings.Fields(string(out)) {
		if rel, ok := strings.CutPrefix(f, "/usr/lib/python3.11/"); ok {
			files["/srv/py/lib/python3.11/"+rel] = f
		}
	}
	if _, err := os.Stat("/srv/py/lib/python3.11"); err == nil {
		t.Fatal("the host has /srv/py/lib/python3.11: the test would not tell the two apart")
	}
	script, _ := filepath.Abs("testdata/target.py")
	for _, c := range []struct {
		mode []string
		fn   string
	}{
		{[]string{"compute"}, "Indexer.rebuild"},
		{[]string{"threads", "4"}, "worker"},
	} {
		t.Run(c.mode[0], func(t *testing.T) {
			ct := containertest.Start(t, containertest.Config{
				Program: py, Files: map[string]string{"target.py": script}, RootFiles: files,
				Env:  []string{"PYTHONHOME=/srv/py", "PYTHONDONTWRITEBYTECODE=1"},
				Args: append([]string{"-S", "/opt/python3.11/target.py"}, c.mode...),
			})
			ct.WaitReady(t, 20*time.Second)
			if id := (proc.FS{}).Identity(ct.HostPID); id.NsPID != 1 || ct.HostPID == 1 {
				t.Fatalf("the interpreter is PID %d inside, %d outside: the test would not tell the two apart", id.NsPID, ct.HostPID)
			}
			res, err := record0(ct.HostPID, 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			tids := map[int]bool{}
			var named, all int64
			for _, s := range res.Profile.Stacks {
				all += s.Count
				f, ok := innermostPython(s.Frames)
				// The file as the interpreter in the container knows it.
				if ok && f.Function == c.fn && f.File == "/opt/python3.11/target.py" {
					named += s.Count
					tids[s.TID] = true
				}
			}
			t.Logf("%d of %d samples in %s, on %d threads; hottest %s; notes %q", named, all, c.fn, len(tids), hottest(res), res.Notes)
			if all < 20 || named < all*8/10 {
				t.Errorf("want most samples in %s (/opt/python3.11/target.py)", c.fn)
			}
			if c.fn == "worker" && (len(tids) < 3 || tids[ct.HostPID]) {
				t.Errorf("worker ran on threads %v, want three or four of the four, not the main thread %d", tids, ct.HostPID)
			}
		})
	}
}
