package cpuprofile

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/flame"
	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/sample"
	"github.com/cpuwhy/cpuwhy/test/containertest"
	"github.com/cpuwhy/cpuwhy/test/privtest"
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

	// NatThreadMain's CPU time over the 2 s the sampling lasts (it starts
	// as Record does, and unwinding comes after): 99 samples per second
	// of it, at any speed of the machine and whatever share of a core the
	// thread gets on a loaded one.
	nat := threadCalled(t, c.HostPID, "NatThreadMain")
	cpu0 := onCPU(t, c.HostPID, nat)
	cpu1 := make(chan time.Duration, 1)
	time.AfterFunc(2*time.Second, func() { cpu1 <- onCPU(t, c.HostPID, nat) })
	res, err := Record(context.Background(), c.HostPID, Options{FS: proc.FS{}, Duration: 2 * time.Second, Kernel: true})
	if err != nil {
		t.Fatal(err)
	}
	oncpu := <-cpu1 - cpu0
	expected := oncpu.Seconds() * sample.DefaultFrequency
	t.Logf("%d samples; NatThreadMain ran %v of the 2 s: %.2f of the %.0f expected", res.Samples, oncpu.Round(time.Millisecond), float64(res.Samples)/max(expected, 1), expected)
	if float64(res.Samples) < 0.6*expected || res.Samples == 0 {
		t.Fatalf("only %d samples of a spinning thread that ran %v, expected at least %.0f (0.6 of %.0f)", res.Samples, oncpu, 0.6*expected, expected)
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

// threadCalled returns the TID of pid's thread named name.
func threadCalled(t *testing.T, pid int, name string) int {
	t.Helper()
	stats, err := proc.FS{}.ThreadSchedstats(pid)
	if err != nil {
		t.Fatal(err)
	}
	for tid := range stats {
		if comm, err := os.ReadFile(proc.FS{}.TaskPath(pid, tid, "comm")); err == nil && strings.TrimSpace(string(comm)) == name {
			return tid
		}
	}
	t.Fatalf("process %d has no thread %s", pid, name)
	return 0
}

// onCPU is the time thread tid of pid has run so far, from schedstat.
func onCPU(t *testing.T, pid, tid int) time.Duration {
	st, err := proc.FS{}.Schedstat(pid, tid)
	if err != nil {
		t.Error(err)
	}
	return st.OnCPU
}

// TestRecordExec records a process whose main thread runs exec 300 ms
// into the window: each program's function is named, its stacks carry the
// main thread's name at the time, the addresses of the program left are
// marked past (their code is no longer the process's to read), and the
// exec is in the result, in seconds in JSON.
func TestRecordExec(t *testing.T) {
	cmd := scenario.Build(t, "execphase").Start(t, nil, "300")
	res, err := Record(context.Background(), cmd.Process.Pid, Options{FS: proc.FS{}, Duration: time.Second})
	if errors.Is(err, sample.ErrPermission) || errors.Is(err, sample.ErrNotSupported) {
		privtest.Require(t, err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Execs) != 1 || res.Execs[0].From != "execphase" || res.Execs[0].To != "phasetwo" ||
		res.Execs[0].At <= 0 || res.Execs[0].At > time.Second {
		t.Fatalf("execs %+v, want one from execphase to phasetwo within the second", res.Execs)
	}
	b, err := json.Marshal(res.Execs[0])
	if err != nil || !strings.HasPrefix(string(b), `{"at_s":0.`) || !strings.HasSuffix(string(b), `,"from":"execphase","to":"phasetwo"}`) {
		t.Errorf("exec in JSON: %s, %v", b, err)
	}

	threadOf := map[string]map[string]int64{} // function: thread names: samples
	for _, s := range res.Profile.Stacks {
		for _, fn := range userFrames(s) {
			if fn == "phase_one_burn" || fn == "phase_two_burn" {
				if threadOf[fn] == nil {
					threadOf[fn] = map[string]int64{}
				}
				threadOf[fn][s.Thread] += s.Count
			}
		}
	}
	t.Logf("samples by function and thread: %v", threadOf)
	for fn, want := range map[string]string{"phase_one_burn": "execphase", "phase_two_burn": "phasetwo"} {
		// 300 ms and 700 ms of at most a core at 99 Hz: a few samples
		// at the least, even on a loaded machine.
		if len(threadOf[fn]) != 1 || threadOf[fn][want] < 3 {
			t.Errorf("%s sampled in threads %v, want in %s alone", fn, threadOf[fn], want)
		}
	}

	past := map[string]map[bool]int{}
	for _, l := range res.Leaves {
		if past[l.Function] == nil {
			past[l.Function] = map[bool]int{}
		}
		past[l.Function][l.Past] += l.Count
	}
	if p := past["phase_one_burn"]; p[true] == 0 || p[false] != 0 {
		t.Errorf("leaves of phase_one_burn: %v samples past and not; want all past", p)
	}
	if p := past["phase_two_burn"]; p[false] == 0 || p[true] != 0 {
		t.Errorf("leaves of phase_two_burn: %v samples past and not; want none past", p)
	}
}

// TestQueueFull records with a queue of 8 jobs, far fewer than a drain
// of the rings holds at 999 Hz: while the worker names the first samples,
// those the queue cannot take are dropped and counted, none goes
// uncounted (once naming is warm the drain processes the samples itself,
// and keeps them).
func TestQueueFull(t *testing.T) {
	defer func(n int) { queueLen = n }(queueLen)
	queueLen = 8
	cmd := scenario.Build(t, "compute").Start(t, nil)
	pid := cmd.Process.Pid
	cruncher := threadCalled(t, pid, "cruncher")
	const freq = 999
	var cpu0 time.Duration
	res, err := Record(context.Background(), pid, Options{FS: proc.FS{}, Frequency: freq, Duration: time.Second,
		Ready: func() { cpu0 = onCPU(t, pid, cruncher) }})
	if errors.Is(err, sample.ErrPermission) || errors.Is(err, sample.ErrNotSupported) {
		privtest.Require(t, err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	// The thread's CPU time over the window at 999 Hz, at any speed of
	// the machine; schedstat is read just after the events are
	// disabled, and lags up to a tick at either end.
	expected := (onCPU(t, pid, cruncher) - cpu0).Seconds() * freq
	t.Logf("%d samples, %d lost, %d dropped, of %.0f expected; notes %q", res.Samples, res.Lost, res.Dropped, expected, res.Notes)
	if got := float64(res.Samples) + float64(res.Lost) + float64(res.Dropped); got < 0.9*expected {
		t.Errorf("%d samples, %d lost and %d dropped, want at least %.0f together (0.9 of the %.0f the thread's CPU time gives)", res.Samples, res.Lost, res.Dropped, 0.9*expected, expected)
	}
	if res.Dropped > 0 && !slices.ContainsFunc(res.Notes, func(n string) bool { return strings.Contains(n, "dropped") }) {
		t.Errorf("%d dropped and no note says so: %q", res.Dropped, res.Notes)
	}
	// How many are kept depends on how long the first naming takes on
	// this machine (the queue of 8 drops the rest meanwhile): logged,
	// not bounded.
}
