package nodev8_test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/cpuprofile"
	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/stack"
	"github.com/cpuwhy/cpuwhy/internal/stack/nodev8"
	"github.com/cpuwhy/cpuwhy/test/containertest"
	"github.com/cpuwhy/cpuwhy/test/privtest"
	"github.com/cpuwhy/cpuwhy/test/scenario"
)

func TestMain(m *testing.M) { containertest.Main(m) }

func node(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("node")
	if err != nil {
		privtest.Require(t, "node is not installed (apt-get install nodejs)")
	}
	return path
}

// warmUp lets V8 optimize the hot function: most samples are then in
// code the JIT made, the rest in the interpreter; both are named.
const warmUp = time.Second

// record samples pid for 2 s with V8's runtime alone (no perf map
// names anything: the process writes none).
func record(t *testing.T, pid int, rts []stack.Runtime) *cpuprofile.Result {
	t.Helper()
	res, err := cpuprofile.Record(context.Background(), pid, cpuprofile.Options{
		FS: proc.FS{}, Duration: 2 * time.Second, NsPID: proc.FS{}.Identity(pid).NsPID, Runtimes: rts,
	})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// leafShare is the part of the samples whose innermost user frame is
// named want (Name: the function and its position), and the hottest
// stack, for failure messages.
func leafShare(res *cpuprofile.Result, want string) (float64, string) {
	var n, all, most int64
	var best []stack.Frame
	for _, s := range res.Profile.Stacks {
		all += s.Count
		if s.Count > most {
			best, most = s.Frames, s.Count
		}
		for _, f := range s.Frames {
			if f.IsKernel() {
				continue
			}
			if f.Kind == nodev8.Kind && f.Name() == want {
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

// TestCompute: node with no flag, spinning in settleAccounts (line 7 of
// ledger.js): the leaf is the function, with its position, and its
// callers go on to node's module loader.
func TestCompute(t *testing.T) {
	node(t)
	p := scenario.Build(t, "nodehot")
	cmd := p.Start(t, nil, "compute")
	time.Sleep(warmUp)
	res := record(t, cmd.Process.Pid, []stack.Runtime{nodev8.Runtime{}})
	if share, hot := leafShare(res, "settleAccounts (ledger.js:7)"); share < 0.8 {
		t.Errorf("%.0f%% of samples end in settleAccounts (ledger.js:7), want >= 80%%; hottest: %s; notes %q", 100*share, hot, res.Notes)
	}
	// The module's own code called it: one frame further, named too.
	var callers int64
	for _, s := range res.Profile.Stacks {
		for i, f := range s.Frames {
			if f.Kind == nodev8.Kind && f.Function == "settleAccounts" && i+1 < len(s.Frames) && s.Frames[i+1].Name() == "(anonymous) (ledger.js:1)" {
				callers += s.Count
				break
			}
		}
	}
	if callers == 0 {
		_, hot := leafShare(res, "")
		t.Errorf("no stack has the module's function as settleAccounts' caller; hottest: %s", hot)
	}
}

// TestCallback: an anonymous arrow function run by the event loop again
// and again is named as V8 names it (by the variable it was assigned to)
// with its line.
func TestCallback(t *testing.T) {
	node(t)
	p := scenario.Build(t, "nodehot")
	cmd := p.Start(t, nil, "callback")
	time.Sleep(warmUp)
	res := record(t, cmd.Process.Pid, []stack.Runtime{nodev8.Runtime{}})
	if share, hot := leafShare(res, "tick (ledger.js:23)"); share < 0.5 {
		t.Errorf("%.0f%% of samples end in tick (ledger.js:23), want >= 50%% (the rest is the event loop); hottest: %s; notes %q", 100*share, hot, res.Notes)
	}
}

// TestUnknownVersion: a V8 release not in Known names nothing, and says
// so once.
func TestUnknownVersion(t *testing.T) {
	node(t)
	known := nodev8.Known
	nodev8.Known = [][2]int{{99, 0}}
	t.Cleanup(func() { nodev8.Known = known })
	p := scenario.Build(t, "nodehot")
	cmd := p.Start(t, nil, "compute")
	time.Sleep(warmUp)
	res := record(t, cmd.Process.Pid, []stack.Runtime{nodev8.Runtime{}})
	for _, s := range res.Profile.Stacks {
		for _, f := range s.Frames {
			if f.Kind == nodev8.Kind {
				t.Fatalf("a frame was named %q by a V8 release the runtime does not know", f.Name())
			}
		}
	}
	var noted bool
	for _, n := range res.Notes {
		noted = noted || strings.Contains(n, "V8 release cpuwhy does not know")
	}
	if !noted {
		t.Errorf("no note says the release is unknown: %q", res.Notes)
	}
}

// TestContainer: node in a container, the same names: the binary's
// metadata is read through the container's root.
func TestContainer(t *testing.T) {
	bin := node(t)
	script, err := filepath.Abs("../../../test/scenario/testdata/nodehot/ledger.js")
	if err != nil {
		t.Fatal(err)
	}
	c := containertest.Start(t, containertest.Config{
		Program: bin, Files: map[string]string{"ledger.js": script},
		Args: []string{"/opt/node/ledger.js", "compute"},
	})
	c.WaitReady(t, 20*time.Second)
	time.Sleep(warmUp)
	res := record(t, c.HostPID, []stack.Runtime{nodev8.Runtime{}})
	if share, hot := leafShare(res, "settleAccounts (ledger.js:7)"); share < 0.8 {
		t.Errorf("%.0f%% of samples end in settleAccounts (ledger.js:7), want >= 80%%; hottest: %s; notes %q", 100*share, hot, res.Notes)
	}
}
