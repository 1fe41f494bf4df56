package servers

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/diagnose"
	"github.com/cpuwhy/cpuwhy/internal/verdict"
	"github.com/cpuwhy/cpuwhy/test/containertest"
	"github.com/cpuwhy/cpuwhy/test/privtest"
)

// pathology is a real program from Debian caught in a pattern cpuwhy must
// name (issue 11): the twin of the servers above, which must not be.
type pathology struct {
	name     string
	packages string
	args     []string
	// candidates lists the processes to diagnose, given the program's
	// PID: the busiest is diagnosed.
	candidates func(t *testing.T, pid int) []int
	want       verdict.Pattern
	syscall    string
	errno      string
	// unsaid are words the verdict's summary and advice must not hold:
	// wording its own numbers contradict.
	unsaid []string
}

var pathologies = []pathology{
	{
		// A client retrying a closed port without a backoff: each round
		// is socket, fcntl, connect (ECONNREFUSED), getsockname,
		// recvmsg, six recvfrom (EAGAIN), close and nanosleep(0). Nothing
		// listens on port 1 of the sandbox's own loopback.
		name:       "socat retry",
		packages:   "socat",
		args:       []string{"socat", "-u", "TCP:127.0.0.1:1,forever,interval=0", "/dev/null"},
		candidates: func(t *testing.T, pid int) []int { return []int{pid} },
		want:       verdict.ErrorLoop, syscall: "connect", errno: "ECONNREFUSED",
	},
	{
		// Two wakers, each in a process of its own, waking a waiter in a
		// child process on shared memory, whether or not it waits: most
		// wakes wake nobody.
		name:       "stress-ng futex",
		packages:   "stress-ng",
		args:       []string{"stress-ng", "--futex", "2", "-t", "60"},
		candidates: func(t *testing.T, pid int) []int { return children(t, pid) },
		want:       verdict.LockContention, syscall: "futex",
	},
	{
		// A TCP sender on loopback: the stressor process (stress-ng's
		// child) serves, sending 4 KiB at a time as fast as the socket
		// takes them, to a client it forked, which reads. The writes are
		// a buffer's worth each, to a data socket: neither "small" nor a
		// log.
		name:       "stress-ng sock",
		packages:   "stress-ng",
		args:       []string{"stress-ng", "--sock", "1", "-t", "60"},
		candidates: func(t *testing.T, pid int) []int { return children(t, pid) },
		want:       verdict.WriteStorm, syscall: "sendto",
		unsaid: []string{"with small writes", "log level"},
	},
}

// TestPathologies diagnoses real programs stuck in a CPU pattern: each
// must get its pattern, as the first verdict.
func TestPathologies(t *testing.T) {
	for _, p := range pathologies {
		t.Run(p.name, func(t *testing.T) {
			if lookPath(p.args[0]) == "" {
				privtest.Require(t, fmt.Sprintf("%s is not installed (apt-get install %s)", p.args[0], p.packages))
			}
			sb := containertest.NewSandbox(t)
			cmd := exec.Command(lookPath(p.args[0]), p.args[1:]...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			cmd.WaitDelay = time.Second
			if err := sb.Start(cmd); err != nil {
				t.Fatal(err)
			}
			pid, cpu, err := waitLoaded(p.candidates(t, cmd.Process.Pid))
			if err != nil {
				t.Fatalf("%v; %s says: %s", err, p.args[0], out.String())
			}
			t.Logf("%s PID %d: %.0f%% of a core", p.name, pid, cpu)
			r := diagnoseProcess(t, pid)
			var text bytes.Buffer
			if err := diagnose.WriteText(&text, r, diagnose.TextOptions{}); err != nil {
				t.Fatal(err)
			}
			t.Logf("cpuwhy %d said:\n%s", pid, text.String())
			if len(r.Verdicts) == 0 {
				t.Fatal("no verdict")
			}
			v := r.Verdicts[0]
			if v.Pattern != p.want {
				t.Fatalf("first verdict %s, want %s: %s\n  %s", v.Pattern, p.want, v.Summary, strings.Join(v.Evidence, "\n  "))
			}
			if got := deref(v.Syscall); got != p.syscall {
				t.Errorf("syscall %q, want %q", got, p.syscall)
			}
			if got := deref(v.Errno); got != p.errno {
				t.Errorf("errno %q, want %q", got, p.errno)
			}
			for _, w := range p.unsaid {
				if strings.Contains(v.Summary, w) || strings.Contains(v.Advice, w) {
					t.Errorf("the verdict says %q, which its numbers contradict:\n  %s\n  fix: %s", w, v.Summary, v.Advice)
				}
			}
		})
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
