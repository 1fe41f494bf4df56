package cli

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/test/containertest"
	"github.com/cpuwhy/cpuwhy/test/scenario"
)

// startBusyPoll runs the seed's scenario in a hand-made docker-like
// container, as in the field report: /opt/vpnserver/vpnserver, port 1701.
func startBusyPoll(t *testing.T) *containertest.Container {
	t.Helper()
	prog := scenario.Build(t, "busypoll")
	c := containertest.Start(t, containertest.Config{
		Program: prog.Path,
		Files:   prog.Files,
		Args:    []string{"1701"},
		Network: true,
		Name:    "vpn-" + strconv.Itoa(os.Getpid()),
	})
	c.WaitReady(t, 10*time.Second)
	return c
}

func TestTopContainerJSON(t *testing.T) {
	c := startBusyPoll(t)
	tests := []struct {
		name string
		args []string
	}{
		{"by container name", []string{"--container", c.Name}},
		{"by id prefix", []string{"--container", c.ID[:8]}},
		{"by ns pid", []string{"--container", c.Name, "--ns-pid", "1"}},
		{"by host pid", []string{strconv.Itoa(c.HostPID)}},
		{"whole host with threads", []string{"--threads"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"top", "--json", "-d", "1", "--docker-data-root", c.DataRoot,
				"--docker-socket", "/nonexistent/docker.sock"}, tt.args...)
			rec := recordRuntime(t, c.HostPID, natThread(t, c.HostPID))
			code, out, errOut := run(t, args...)
			rec.stop()
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			fs := frames(t, out)
			if len(fs) != 1 {
				t.Fatalf("got %d frames, want 1", len(fs))
			}
			p := findProcess(fs[0], c.HostPID)
			if p == nil {
				t.Fatalf("container process %d not listed in %s", c.HostPID, out)
			}
			if p.NsPID != 1 {
				t.Errorf("ns_pid = %d, want 1", p.NsPID)
			}
			if p.Container == nil || p.Container.ID != c.ID || p.Container.Name != c.Name || p.Container.Runtime != "docker" {
				t.Errorf("container = %+v, want docker %s %s", p.Container, c.ID, c.Name)
			}
			th := findThread(p, "NatThreadMain")
			if th == nil {
				t.Fatalf("no NatThreadMain thread in %+v", p.Threads)
			}
			truth := rec.cpu(t, fs[0].Time.Add(-time.Duration(fs[0].Interval*float64(time.Second))), fs[0].Time)
			// The thread spins, so it gets a whole core unless the machine
			// is busy with something else; schedstat tells which.
			switch {
			case math.Abs(th.CPU-truth) > 3:
				t.Errorf("NatThreadMain at %.1f%% of a core, schedstat says %.1f%%", th.CPU, truth)
			case th.CPU < 90 && truth >= 93:
				t.Errorf("NatThreadMain at %.1f%% of a core, want >= 90 (schedstat %.1f%%)", th.CPU, truth)
			case th.CPU < 90:
				t.Logf("NatThreadMain got only %.1f%% of a core (schedstat %.1f%%): the machine is busy", th.CPU, truth)
			}
			if th.State != "R" && th.State != "S" {
				t.Errorf("NatThreadMain state %q", th.State)
			}
		})
	}
}

// schedRuntime is a thread's precise on-CPU time from schedstat: an
// accounting independent of the utime/stime ticks cpuwhy reads.
func schedRuntime(t *testing.T, pid, tid int) time.Duration {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/schedstat", pid, tid))
	if err != nil {
		t.Fatal(err)
	}
	ns, err := strconv.ParseInt(strings.Fields(string(data))[0], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return time.Duration(ns)
}

func TestTopAgreesWithSchedstat(t *testing.T) {
	c := startBusyPoll(t)
	// Three reports of one second: each thread's CPU% is compared with
	// schedstat's runtime over the same span, read before the first and
	// after the last report.
	rec := recordRuntime(t, c.HostPID, natThread(t, c.HostPID))
	code, out, errOut := run(t, "top", "--json", "-n", "3", "-d", "1", strconv.Itoa(c.HostPID))
	rec.stop()
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	fs := frames(t, out)
	var sum, span float64
	for _, f := range fs {
		th := findThread(findProcess(f, c.HostPID), "NatThreadMain")
		sum += th.CPU * f.Interval
		span += f.Interval
	}
	got := sum / span
	last := fs[len(fs)-1].Time
	elapsed := time.Duration(span * float64(time.Second))
	want := rec.cpu(t, last.Add(-elapsed), last)
	t.Logf("cpuwhy %.1f%%, schedstat %.1f%% over %.2fs", got, want, span)
	if math.Abs(got-want) > 3 {
		t.Errorf("cpuwhy says %.1f%%, schedstat %.1f%%: more than 3 points apart", got, want)
	}
}

// natThread finds the TID of the NatThreadMain thread from /proc directly,
// so that tests of cpuwhy's figures do not depend on cpuwhy to find it.
func natThread(t *testing.T, pid int) int {
	t.Helper()
	comms, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/comm", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range comms {
		if b, err := os.ReadFile(c); err == nil && strings.TrimSpace(string(b)) == "NatThreadMain" {
			tid, _ := strconv.Atoi(filepath.Base(filepath.Dir(c)))
			return tid
		}
	}
	t.Fatalf("process %d has no NatThreadMain thread", pid)
	return 0
}

func TestTopShowsWhereThreadsSleep(t *testing.T) {
	idle := startProgram(t, "idle")
	pid := idle.Process.Pid
	for _, args := range [][]string{
		{"top", "--json", "-d", "0.2", strconv.Itoa(pid)},
		{"top", "--json", "-d", "0.2", "--threads"}, // host-wide: every thread resolved too
	} {
		code, out, errOut := run(t, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
		p := findProcess(frames(t, out)[0], pid)
		if p == nil {
			t.Fatalf("%v: idle scenario %d not listed", args, pid)
		}
		acceptor := findThread(p, "acceptor")
		if acceptor == nil || acceptor.State != "S" || !strings.HasPrefix(acceptor.Syscall, "accept") {
			t.Errorf("%v: acceptor thread = %+v, want sleeping in accept", args, acceptor)
		}
		if acceptor != nil && acceptor.CPU != 0 {
			t.Errorf("%v: idle acceptor at %.1f%% CPU", args, acceptor.CPU)
		}
	}
}

// runtimeRecorder samples a thread's schedstat runtime every few
// milliseconds, so that its CPU share can be computed over exactly the
// window cpuwhy reports, whatever the machine does outside it.
type runtimeRecorder struct {
	done    chan struct{}
	stopped chan struct{}
	at      []time.Time
	runtime []time.Duration
}

func recordRuntime(t *testing.T, pid, tid int) *runtimeRecorder {
	r := &runtimeRecorder{done: make(chan struct{}), stopped: make(chan struct{})}
	// The first sample is taken before returning, so the record starts
	// before whatever the caller then measures.
	r.at = append(r.at, time.Now())
	r.runtime = append(r.runtime, schedRuntime(t, pid, tid))
	go func() {
		defer close(r.stopped)
		for {
			select {
			case <-r.done:
				// One more, so the record ends after whatever the caller
				// measured.
				r.at = append(r.at, time.Now())
				r.runtime = append(r.runtime, schedRuntime(t, pid, tid))
				return
			case <-time.After(5 * time.Millisecond):
			}
			r.at = append(r.at, time.Now())
			r.runtime = append(r.runtime, schedRuntime(t, pid, tid))
		}
	}()
	return r
}

func (r *runtimeRecorder) stop() {
	close(r.done)
	<-r.stopped
}

// cpu is the thread's CPU share in percent over [from, to], interpolating
// between samples.
func (r *runtimeRecorder) cpu(t *testing.T, from, to time.Time) float64 {
	t.Helper()
	if len(r.at) < 2 || from.Before(r.at[0]) || to.After(r.at[len(r.at)-1]) {
		t.Fatalf("window %v..%v outside the recorded %v..%v", from, to, r.at[0], r.at[len(r.at)-1])
	}
	return 100 * float64(r.runtimeAt(to)-r.runtimeAt(from)) / float64(to.Sub(from))
}

func (r *runtimeRecorder) runtimeAt(at time.Time) time.Duration {
	i := sort.Search(len(r.at), func(i int) bool { return !r.at[i].Before(at) })
	if i == 0 {
		return r.runtime[0]
	}
	a, b := r.at[i-1], r.at[i]
	frac := float64(at.Sub(a)) / float64(b.Sub(a))
	return r.runtime[i-1] + time.Duration(frac*float64(r.runtime[i]-r.runtime[i-1]))
}
