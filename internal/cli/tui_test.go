package cli

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/test/privtest"
)

// tmux drives a terminal program as a person would: keys in, screen out.
type tmux struct {
	t      *testing.T
	socket string
}

// tmuxServers counts the tmux servers started by this test binary.
var tmuxServers int

func newTmux(t *testing.T, command string) *tmux {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		privtest.Require(t, "tmux is not installed (apt-get install tmux)")
	}
	// A socket of its own: a server killed by the previous test's cleanup
	// may still be exiting, and a new session on its socket would die
	// with it ("server exited unexpectedly").
	tmuxServers++
	tm := &tmux{t: t, socket: fmt.Sprintf("cpuwhy-test-%d-%d", os.Getpid(), tmuxServers)}
	tm.run("new-session", "-d", "-x", "160", "-y", "40", "-s", "top", command)
	t.Cleanup(func() { _ = exec.Command("tmux", "-L", tm.socket, "kill-server").Run() })
	return tm
}

func (tm *tmux) run(args ...string) string {
	tm.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-L", tm.socket}, args...)...).CombinedOutput()
	if err != nil {
		tm.t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func (tm *tmux) keys(keys ...string) {
	tm.t.Helper()
	tm.run(append([]string{"send-keys", "-t", "top"}, keys...)...)
}

func (tm *tmux) screen() string {
	tm.t.Helper()
	return tm.run("capture-pane", "-p", "-t", "top")
}

// waitFor polls the screen until ok accepts it.
func (tm *tmux) waitFor(what string, ok func(screen string) bool) string {
	tm.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var s string
	for time.Now().Before(deadline) {
		s = tm.screen()
		if ok(s) {
			return s
		}
		time.Sleep(100 * time.Millisecond)
	}
	tm.t.Fatalf("screen never showed %s:\n%s", what, s)
	return ""
}

func (tm *tmux) alive() bool {
	return exec.Command("tmux", "-L", tm.socket, "has-session", "-t", "top").Run() == nil
}

func TestLiveView(t *testing.T) {
	compute := startProgram(t, "compute")
	pid := strconv.Itoa(compute.Process.Pid)
	tm := newTmux(t, "TERM=xterm-256color "+cpuwhyBinary(t)+" top -d 0.5")

	row := func(s string) bool {
		for _, l := range strings.Split(s, "\n") {
			if f := strings.Fields(strings.TrimPrefix(l, ">")); len(f) > 0 && f[0] == pid {
				return true
			}
		}
		return false
	}
	tm.waitFor("the process table with the compute scenario", func(s string) bool {
		return strings.Contains(s, "cpuwhy top") && strings.Contains(s, "sort:cpu") && row(s)
	})

	// Filter: only the compute scenario is left. "/" and the text go in one
	// write, as when typed fast: the terminal hands them over in one read.
	tm.keys("-l", "/compute")
	tm.keys("Enter")
	s := tm.waitFor("the filtered table", func(s string) bool {
		return strings.Contains(s, "filter:compute") && strings.Contains(s, " 1 processes")
	})
	if !row(s) {
		t.Fatalf("filtered table lacks %s:\n%s", pid, s)
	}

	// Drill down into its threads.
	tm.keys("Enter")
	tm.waitFor("the threads of the compute scenario", func(s string) bool {
		return strings.Contains(s, "threads of "+pid) && strings.Contains(s, "cruncher") && strings.Contains(s, "TID")
	})

	// Back, and sort by memory.
	tm.keys("Escape")
	tm.waitFor("the process table again", func(s string) bool {
		return !strings.Contains(s, "threads of") && strings.Contains(s, "COMMAND")
	})
	tm.keys("m")
	tm.waitFor("sort by memory", func(s string) bool { return strings.Contains(s, "sort:mem") })

	tm.keys("q")
	deadline := time.Now().Add(5 * time.Second)
	for tm.alive() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if tm.alive() {
		t.Fatalf("cpuwhy top did not quit on q:\n%s", tm.screen())
	}
}
