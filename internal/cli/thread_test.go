package cli

import (
	"fmt"
	"github.com/cpuwhy/cpuwhy/test/scenario"
	"strconv"
	"strings"
	"testing"
)

// TestThreadIDAsPID gives every command a thread's TID where a PID goes
// (issue 18, item 6): each says, in the same one-line note, that the TID
// is a thread of its process, and examines that process. Before, the
// diagnosis, syscalls and record failed on a pidfd error, and dump and top
// showed the whole process under the TID.
func TestThreadIDAsPID(t *testing.T) {
	cmd := startProgram(t, "compute")
	pid := cmd.Process.Pid
	tid := scenario.OtherThread(t, pid)
	note := fmt.Sprintf("cpuwhy: note: TID %d (cruncher) is a thread of process %d (compute), not a process: examining process %d, all its threads\n", tid, pid, pid)
	p, tidArg := strconv.Itoa(pid), strconv.Itoa(tid)
	for _, tt := range []struct {
		name string
		args []string
		want []string // in stdout
	}{
		{"top", []string{"top", "-n", "1", "-d", "0.3", tidArg}, []string{"1 processes", " " + p + " ", " " + tidArg + " ", "cruncher"}},
		{"dump", []string{"dump", tidArg}, []string{"cpuwhy dump: " + p + " (compute), 2 threads", "Thread " + tidArg + " (cruncher)", "crunch_numbers"}},
		{"syscalls", []string{"syscalls", "-d", "0.5s", tidArg}, []string{"cpuwhy syscalls: PID " + p + " (compute)"}},
		{"record", []string{"record", "-d", "0.5s", tidArg}, []string{"cpuwhy record: " + p + " (compute)", "crunch_numbers"}},
		{"diagnosis", []string{"-d", "1s", tidArg}, []string{"cpuwhy: compute (PID " + p + ")", "cruncher", "compute_loop"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runBinary(t, nil, tt.args...)
			if code != 0 {
				t.Fatalf("cpuwhy %s: exit %d: %s", strings.Join(tt.args, " "), code, errOut)
			}
			if errOut != note {
				t.Errorf("stderr %q, want the note %q", errOut, note)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestThreadIDInContainer names a container's thread by the ID it has
// inside the container (--ns-pid) and by its host TID: both resolve to
// the container's process, and the note speaks the IDs the user gave.
func TestThreadIDInContainer(t *testing.T) {
	c := startBusyPoll(t)
	nat := natThread(t, c.HostPID)
	nsNat, nsProc := nsPID(t, nat), nsPID(t, c.HostPID)
	container := []string{"--container", c.Name, "--docker-data-root", c.DataRoot, "--docker-socket", "/nonexistent"}
	for _, tt := range []struct {
		name string
		args []string
		note string
	}{
		{"ns-pid", append([]string{"dump", "--ns-pid", strconv.Itoa(nsNat)}, container...),
			fmt.Sprintf("cpuwhy: note: TID %d (NatThreadMain) is a thread of PID %d (vpnserver) in container %s", nsNat, nsProc, c.Name)},
		{"host TID", []string{"dump", "--docker-data-root", c.DataRoot, "--docker-socket", "/nonexistent", strconv.Itoa(nat)},
			fmt.Sprintf("cpuwhy: note: TID %d (NatThreadMain) is a thread of PID %d (vpnserver) in container %s", nsNat, nsProc, c.Name)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runBinary(t, nil, tt.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			assertOneLine(t, errOut, tt.note)
			if want := fmt.Sprintf("cpuwhy dump: %d (vpnserver)", c.HostPID); !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		})
	}
}
