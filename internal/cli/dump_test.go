package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/test/containertest"
	"github.com/cpuwhy/cpuwhy/test/scenario"
)

func TestDumpContainer(t *testing.T) {
	c := startBusyPoll(t)
	// A dump is a snapshot: the poller spends most of its time in libc's
	// recvfrom (the system call and its wrapper), but a stop may land in
	// RecvFrom's own code around it, more often on a loaded machine. Every
	// dump must unwind the whole stripped chain; one of a few must catch
	// the thread in recvfrom.
	inRecvfrom := false
	for i := 0; i < 5 && !inRecvfrom; i++ {
		stack := dumpNat(t, c)
		for _, want := range []string{"RecvFrom", "vpnserver+0x", "start_thread"} {
			if !strings.Contains(stack, want) {
				t.Errorf("NatThreadMain stack %q lacks %q", stack, want)
			}
		}
		inRecvfrom = strings.HasPrefix(stack, "recvfrom")
		t.Logf("dump %d: %s", i, stack)
	}
	if !inRecvfrom {
		t.Error("no dump of five caught NatThreadMain in recvfrom")
	}
	assertRunning(t, c.HostPID)
}

// dumpNat dumps the busypoll container and returns its NatThreadMain's
// stack, frames joined by " <- ".
func dumpNat(t *testing.T, c *containertest.Container) string {
	t.Helper()
	code, out, errOut := run(t, "dump", "--json", "--container", c.Name, "--docker-data-root", c.DataRoot, "--docker-socket", "/nonexistent")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var d struct {
		PID     int          `json:"pid"`
		Threads []dumpThread `json:"threads"`
	}
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if d.PID != c.HostPID || len(d.Threads) != 2 {
		t.Fatalf("dump of %d has %d threads: %s", d.PID, len(d.Threads), out)
	}
	var nat *dumpThread
	for i := range d.Threads {
		if d.Threads[i].Name == "NatThreadMain" {
			nat = &d.Threads[i]
		}
		// Stopped only to copy registers and stack: about 0.1 ms, twice
		// that at half the speed; 100 ms catches a thread left stopped,
		// with room for a loaded machine's scheduling.
		if d.Threads[i].HeldUs > 100_000 {
			t.Errorf("thread %d held %dµs", d.Threads[i].TID, d.Threads[i].HeldUs)
		}
	}
	if nat == nil {
		t.Fatalf("no NatThreadMain: %s", out)
	}
	return strings.Join(nat.Frames, " <- ")
}

// TestDumpLeavesTargetRunning dumps a process many times over, each time
// from a cpuwhy process of its own as a user runs it: the target must
// never be left stopped or traced, and keep its speed.
func TestDumpLeavesTargetRunning(t *testing.T) {
	b, control := scenario.StartBusypoll(t), scenario.StartBusypoll(t)
	b.Pin(t, 0)
	control.Pin(t, 1)
	before := b.RelativeRate(t, control, 300*time.Millisecond)
	for i := 0; i < 20; i++ {
		if code, _, errOut := runBinary(t, nil, "dump", fmt.Sprint(b.PID())); code != 0 {
			t.Fatalf("dump %d: exit %d: %s", i, code, errOut)
		}
	}
	assertRunning(t, b.PID())
	// A thread left stopped or traced is what assertRunning checks exactly;
	// the speed only has to show the target is not crippled (two pinned
	// twins' speed ratio drifts by a quarter between runs on these
	// machines, with nothing traced).
	if after := b.RelativeRate(t, control, 300*time.Millisecond); after < before/2 {
		t.Errorf("after the dumps busypoll runs at %.2f of an untouched twin's speed, before at %.2f", after, before)
	}
}

// assertRunning checks that no thread of pid is stopped or traced.
func assertRunning(t *testing.T, pid int) {
	t.Helper()
	time.Sleep(50 * time.Millisecond)
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, task.Name()))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(line, "State:") && (strings.Contains(line, "stopped") || strings.Contains(line, "tracing stop")) {
				t.Errorf("thread %s left %s", task.Name(), line)
			}
			if strings.HasPrefix(line, "TracerPid:") && strings.TrimSpace(strings.TrimPrefix(line, "TracerPid:")) != "0" {
				t.Errorf("thread %s still traced: %s", task.Name(), line)
			}
		}
	}
}
