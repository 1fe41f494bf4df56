package cpuprofile

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/flame"
	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/test/containertest"
	"github.com/cpuwhy/cpuwhy/test/scenario"
)

func TestMain(m *testing.M) { containertest.Main(m) }

// userFrames is a stack's user part, innermost first, by name.
func userFrames(s flame.Stack) []string {
	var out []string
	for _, f := range s.Frames {
		if !f.IsKernel() {
			out = append(out, f.Name())
		}
	}
	return out
}

// TestSeedStack records the seed's server in a container, from the host:
// the main binary is stripped, built without frame pointers, and exists
// only inside the container.
func TestSeedStack(t *testing.T) {
	prog := scenario.Build(t, "busypoll")
	c := containertest.Start(t, containertest.Config{Program: prog.Path, Files: prog.Files, Args: []string{"1701"}, Network: true})
	c.WaitReady(t, 10*time.Second)

	res, err := Record(context.Background(), c.HostPID, Options{FS: proc.FS{}, Duration: 2 * time.Second, Kernel: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Samples < 50 {
		t.Fatalf("only %d samples in 2 s of a spinning thread", res.Samples)
	}
	share := float64(res.UnwoundToStart) / float64(res.Samples)
	t.Logf("%d samples, %.1f%% unwound to the thread's start; notes %q", res.Samples, 100*share, res.Notes)
	if share < 0.9 {
		t.Errorf("%.1f%% of samples unwound to the thread's start, want >= 90%%", 100*share)
	}

	// The hottest user stack, summed over kernel variations.
	byUser := map[string]int64{}
	for _, s := range res.Profile.Stacks {
		if s.Thread == "NatThreadMain" {
			byUser[strings.Join(userFrames(s), " <- ")] += s.Count
		}
	}
	var hottest string
	var most int64
	for k, n := range byUser {
		if n > most {
			hottest, most = k, n
		}
	}
	t.Logf("hottest user stack (%d samples): %s", most, hottest)
	frames := strings.Split(hottest, " <- ")
	if len(frames) < 4 {
		t.Fatalf("hottest stack too short: %q", hottest)
	}
	// recvfrom (libc) <- RecvFrom (libnat.so) <- vpnserver+0x... <- start_thread
	want := []func(string) bool{
		func(f string) bool { return strings.Contains(f, "recvfrom") },
		func(f string) bool { return f == "RecvFrom" },
		func(f string) bool { return strings.HasPrefix(f, "vpnserver+0x") },
		func(f string) bool { return f == "start_thread" },
	}
	for i, ok := range want {
		if !ok(frames[i]) {
			t.Errorf("frame %d = %q in %q", i, frames[i], hottest)
		}
	}
	// The hottest leaf is the instruction after recvfrom's syscall: the
	// thread is in the kernel, and its user registers point there.
	leafSum := 0
	for _, l := range res.Leaves {
		leafSum += l.Count
	}
	if len(res.Leaves) == 0 || leafSum > res.Samples {
		t.Fatalf("%d leaves counting %d samples of %d", len(res.Leaves), leafSum, res.Samples)
	}
	if top := res.Leaves[0]; !strings.Contains(top.Function, "recvfrom") || top.Count < res.Samples/2 {
		t.Errorf("hottest leaf %+v, want most samples in recvfrom", top)
	}

	missing := strings.Join(res.Profile.Missing, "\n")
	if !strings.Contains(missing, "vpnserver") {
		t.Errorf("missing symbols %q do not name vpnserver", missing)
	}
}
