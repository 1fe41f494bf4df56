package diagnose

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/container"
	"github.com/cpuwhy/cpuwhy/internal/cpuprofile"
	"github.com/cpuwhy/cpuwhy/internal/stack"
	"github.com/cpuwhy/cpuwhy/internal/syscalls"
	"github.com/cpuwhy/cpuwhy/internal/target"
	"github.com/cpuwhy/cpuwhy/internal/verdict"
	"github.com/cpuwhy/cpuwhy/test/golden"
)

// TestEvidence runs the whole diagnosis on recorded evidence (see
// evidence_test.go) — the lineup, the readings, the syscall summary, the
// stacks, the code listing, the verdicts — and compares its text and JSON
// reports with golden files (go test -update rewrites them). It needs no
// privilege and no live process: TestEvidenceUnprivileged runs it as
// nobody.
func TestEvidence(t *testing.T) {
	tests := []struct {
		name     string
		evidence string
		edit     func(*evidence) // a variant of the recording
		want     expect
		code     string // the function the listing must show
	}{
		{name: "busy_poll", evidence: "busy_poll",
			want: expect{pattern: verdict.BusyPoll, thread: "NatThreadMain", syscall: "recvfrom", errno: "EAGAIN", fd: "udp 127.0.0.1:1702", frame: "RecvFrom"}},
		{name: "compute_loop", evidence: "compute_loop",
			want: expect{pattern: verdict.ComputeLoop, thread: "cruncher", frame: "crunch_numbers"}, code: "crunch_numbers"},
		{name: "idle", evidence: "idle", want: expect{pattern: verdict.Healthy}},
		{
			// The eBPF tracer failed and nothing was traced: the loop
			// is still on the stacks, but a compute loop is one with
			// few syscalls, which nobody counted, so the verdict says
			// it cannot tell.
			name: "compute_loop_no_tracer", evidence: "compute_loop",
			edit: func(e *evidence) {
				e.Syscalls, e.SysErr = nil, "loading the BPF programs: operation not permitted (CAP_BPF): not supported"
			},
			want: expect{pattern: verdict.Healthy},
		},
		{
			// The sampler failed: the verdict stands on the syscalls,
			// without a stack.
			name: "busy_poll_no_stacks", evidence: "busy_poll",
			edit: func(e *evidence) {
				e.Stacks, e.StackErr = nil, "sampling process 7448: perf_event_open: permission denied"
			},
			want: expect{pattern: verdict.BusyPoll, thread: "NatThreadMain", syscall: "recvfrom", errno: "EAGAIN"},
		},
		{
			// The same poll counted in slices, a twelfth of the window
			// (the default for a target this fast): the counts are
			// scaled back, the verdict is the same, and the report,
			// its verdict and its last line say how it was counted.
			name: "busy_poll_sampled", evidence: "busy_poll",
			edit: func(e *evidence) {
				for i := range e.Syscalls.Calls {
					c := &e.Syscalls.Calls[i]
					c.Count, c.Bytes = max(c.Count/12, c.Timed), c.Bytes/12
				}
				w := e.Syscalls.Duration.Seconds()
				e.Syscalls.Counting = &syscalls.Counting{Sampled: true, ProbeRate: 2.6e6, ProbeRateCPU: 2.7e6, Probe: 0.05, Slices: 14, Counted: w / 12, Window: w, Scale: 12}
			},
			want: expect{pattern: verdict.BusyPoll, thread: "NatThreadMain", syscall: "recvfrom", errno: "EAGAIN", fd: "udp 127.0.0.1:1702", frame: "RecvFrom"},
		},
		{
			// busypoll in a v1 cgroup capped at 0.2 core, recorded by
			// TestThrottledLive: throttled first, then the busy poll.
			name: "throttled_v1", evidence: "throttled",
			want: expect{pattern: verdict.Throttled, thread: "NatThreadMain"},
		},
		{
			// The same process in a Kubernetes pod on a cgroup v2 host:
			// the limit, 0.2 core, on the pod's cgroup, none on the
			// container's scope, usage accounted (usage_usec).
			name: "throttled_v2_pod", evidence: "throttled",
			edit: func(e *evidence) {
				const pod = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234.slice"
				levels := func(periods, throttled uint64, throttledTime, usage time.Duration) []container.CPULevel {
					return []container.CPULevel{
						{Path: pod + "/cri-containerd-abc.scope", Depth: 0, Version: 2, Period: 100 * time.Millisecond, Usage: usage, HasUsage: true, Shares: 8},
						{Path: pod, Depth: 1, Version: 2, Quota: 20 * time.Millisecond, Period: 100 * time.Millisecond,
							Periods: periods, Throttled: throttled, ThrottledTime: throttledTime, Usage: usage + time.Second, HasUsage: true, Shares: 8},
						{Path: "/kubepods.slice/kubepods-burstable.slice", Depth: 2, Version: 2, Period: 100 * time.Millisecond, Usage: 90 * time.Second, HasUsage: true, Shares: 100},
						{Path: "/kubepods.slice", Depth: 3, Version: 2, Period: 100 * time.Millisecond, Usage: 95 * time.Second, HasUsage: true, Shares: 100},
						{Path: "/", Depth: 4, Version: 2},
					}
				}
				// 2 s: 20 periods, 18 of them throttled, 0.4 s of CPU.
				e.Readings[0].Cgroup = levels(6000, 4500, 210*time.Second, 30*time.Second)
				e.Readings[1].Cgroup = levels(6020, 4518, 211*time.Second+500*time.Millisecond, 30*time.Second+400*time.Millisecond)
			},
			want: expect{pattern: verdict.Throttled, thread: "NatThreadMain"},
		},
		{
			// busypoll pinned to one CPU with two compute loops (and,
			// that day, another test's busy poll) recorded by
			// TestStarvedLive: starved, naming them, then the busy poll.
			name: "starved", evidence: "starved",
			want: expect{pattern: verdict.Starved, thread: "NatThreadMain"},
		},
		{
			// udpflood pinned to one CPU in a network namespace of its
			// own, recorded by TestSoftirqLive: NET_RX softirqs took a
			// fifth of its CPU.
			name: "softirq", evidence: "softirq",
			want: expect{pattern: verdict.Softirq, thread: "Flooder"},
		},
		{
			// The compute loop on a VPS whose hypervisor took a quarter
			// of each CPU: the host's /proc/stat at both ends of the
			// window as such a guest writes it.
			name: "steal", evidence: "compute_loop",
			edit: func(e *evidence) {
				ticks := int(100 * e.Readings[1].Taken.Sub(e.Readings[0].Taken).Seconds())
				cpu := [5]int{ticks / 2, ticks / 8, ticks / 8, 0, ticks / 4} // user, system, idle, softirq, steal
				e.Readings[0].Host = &evHost{Stat: string(hostStat(1, [5]int{}, [5]int{}))}
				e.Readings[1].Host = &evHost{Stat: string(hostStat(3, cpu, cpu))}
			},
			want: expect{pattern: verdict.Steal, thread: "cruncher"},
		},
		{
			// ksoftirqd/0 named as the target on the host of the UDP
			// flood (its /proc/stat and /proc/softirqs as recorded by
			// TestSoftirqLive), at 45% of a core in net_rx_action, as
			// when softirqs pile up past what the send path runs: a
			// kernel thread is explained, not refused.
			name: "kernel_thread", evidence: "softirq",
			edit: func(e *evidence) {
				e.Target = evTarget{Kernel: true, PID: 14, Name: "ksoftirqd/0"}
				secs := e.Readings[1].Taken.Sub(e.Readings[0].Taken).Seconds()
				for i, stime := range []uint64{5000, 5000 + uint64(45*secs)} {
					k := evTask{PID: 14, Comm: "ksoftirqd/0", State: "S", STime: stime, NumThreads: 1, StartTime: 2,
						Sched: &evSched{OnCPU: time.Duration(stime) * 10 * time.Millisecond, Waiting: time.Duration(stime) * time.Millisecond}}
					e.Readings[i].Process, e.Readings[i].Threads, e.Readings[i].Cgroup = k, []evTask{k}, nil
				}
				e.Syscalls, e.SysErr, e.FDs, e.Maps, e.Memory = nil, "", nil, nil, nil
				kernel := func(fn string) stack.Frame { return stack.Frame{Kind: stack.Kernel, Function: fn, Module: "[kernel]"} }
				e.Stacks.Frames = []stack.Frame{kernel("net_rx_action"), kernel("handle_softirqs"), kernel("run_ksoftirqd"),
					kernel("smpboot_thread_fn"), kernel("kthread"), kernel("ret_from_fork"), kernel("__napi_poll"), kernel("process_backlog")}
				e.Stacks.Stacks = []evStack{
					{TID: 14, Thread: "ksoftirqd/0", Count: 40, Frames: []int{6, 7, 0, 1, 2, 3, 4, 5}},
					{TID: 14, Thread: "ksoftirqd/0", Count: 12, Frames: []int{0, 1, 2, 3, 4, 5}},
				}
				e.Stacks.Samples, e.Stacks.Leaves, e.Stacks.Missing = 52, nil, nil
			},
			want: expect{pattern: verdict.KernelThread, thread: "ksoftirqd/0", frame: "net_rx_action"},
		},
		{
			// compute with four crunchers pinned to one core, recorded
			// by TestThreadGroupComputeLive: one compute_loop verdict on
			// the group, one row in the thread table.
			name: "thread_group", evidence: "thread_group",
			want: expect{pattern: verdict.ComputeLoop, frame: "crunch_numbers"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := loadEvidence(t, filepath.Join("testdata", tt.evidence+".evidence.json"))
			if tt.edit != nil {
				tt.edit(e)
			}
			tg, opts := e.replay(t)
			res, err := Run(context.Background(), tg, opts)
			if err != nil {
				t.Fatal(err)
			}
			if n := opts.Accounting.(*replayAccounting).read; n != 2 {
				t.Errorf("the accounting was read %d times, want 2: at each end of the window", n)
			}
			check(t, res.Report, tt.want)
			if tt.code != "" {
				c := res.Report.Verdicts[0].Code
				if c == nil || c.Function != tt.code || len(c.Instructions) < 2 {
					t.Errorf("code %+v, want a listing of %s", c, tt.code)
				}
			}
			// What the diagnosis cost is measured on this test, not
			// recorded: it is left out of the golden files.
			c := &res.Report.Cpuwhy
			c.Elapsed, c.CPU, c.CPUShare = 0, 0, 0
			var text, js bytes.Buffer
			if err := WriteText(&text, res.Report, TextOptions{}); err != nil {
				t.Fatal(err)
			}
			if err := WriteJSON(&js, res.Report); err != nil {
				t.Fatal(err)
			}
			golden.Check(t, filepath.Join("testdata", tt.name+".txt"), text.Bytes())
			golden.Check(t, filepath.Join("testdata", tt.name+".json"), js.Bytes())
		})
	}
}

// TestEvidenceUnprivileged runs TestEvidence and TestBlindError again as
// uid 65534 (nobody), without a capability: a collaborator left real (the
// sampler, the tracer, /proc of the recorded PID) fails there, and with it
// the golden files.
func TestEvidenceUnprivileged(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skipf("running as uid %d already: TestEvidence itself ran without privilege", os.Geteuid())
	}
	// The test binary and testdata may sit in directories nobody cannot
	// enter (go test's work directory is 0700): copy both.
	dir, err := os.MkdirTemp("", "cpuwhy-evidence-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "diagnose.test")
	copyFile(t, self, bin, 0o755)
	if err := os.Mkdir(filepath.Join(dir, "testdata"), 0o755); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join("testdata", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		copyFile(t, f, filepath.Join(dir, f), 0o644)
	}
	cmd := exec.Command(bin, "-test.run=^(TestEvidence|TestBlindError)$", "-test.count=1", "-test.v")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("as uid 65534: %v\n%s", err, out)
	}
	t.Logf("as uid 65534:\n%s", out)
	for _, want := range []string{"--- PASS: TestEvidence ", "--- PASS: TestBlindError "} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("as uid 65534, no %q:\n%s", want, out)
		}
	}
	if bytes.Contains(out, []byte("--- SKIP")) {
		t.Errorf("as uid 65534, a test skipped:\n%s", out)
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestBlindError: when neither instrument attaches, the error is one line
// and keeps both causes for errors.Is and errors.As, with or without a
// missing capability to blame.
func TestBlindError(t *testing.T) {
	errTrace := fmt.Errorf("loading the BPF programs: %w", syscalls.ErrNotSupported)
	errSample := fmt.Errorf("sampling process 10: perf_event_open: %w", os.ErrPermission)
	tg := target.Target{PID: 10, Name: "p"}

	t.Run("through Run", func(t *testing.T) {
		e := loadEvidence(t, filepath.Join("testdata", "idle.evidence.json"))
		_, opts := e.replay(t)
		opts.Tracers = []syscalls.Candidate{{Mechanism: syscalls.EBPF, New: func() syscalls.Tracer { return replayTracer{err: errTrace} }}}
		opts.Profiler = ProfilerFunc(func(context.Context, int, cpuprofile.Options) (*cpuprofile.Result, error) { return nil, errSample })
		_, err := Run(context.Background(), tg, opts)
		var blind *BlindError
		if !errors.As(err, &blind) {
			t.Fatalf("error %v (%T), want a *BlindError", err, err)
		}
		for _, cause := range []error{errTrace, errSample, syscalls.ErrNotSupported, os.ErrPermission} {
			if !errors.Is(err, cause) {
				t.Errorf("errors.Is(%q, %q) is false", err, cause)
			}
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("error of more than one line: %q", err)
		}
	})

	priv := &target.PrivilegeError{PID: 10, Name: "p", Missing: []string{"CAP_BPF", "CAP_PERFMON"}}
	for _, tt := range []struct {
		name string
		err  *BlindError
		want string
		is   []error
	}{
		{
			name: "privileged",
			err:  &BlindError{Target: tg, Syscalls: errTrace, Stacks: errSample},
			want: "cannot observe 10 (p): no syscall profile (loading the BPF programs: not supported by this kernel) and no stack samples (sampling process 10: perf_event_open: permission denied)",
			is:   []error{errTrace, errSample, syscalls.ErrNotSupported, os.ErrPermission},
		},
		{
			name: "missing capabilities",
			err:  &BlindError{Target: tg, Syscalls: errTrace, Stacks: errSample, Privilege: priv},
			want: priv.Error(),
			is:   []error{priv, target.ErrPrivilege, errTrace, errSample, syscalls.ErrNotSupported, os.ErrPermission},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("message\n%s\nwant\n%s", got, tt.want)
			}
			var err error = tt.err
			for _, cause := range tt.is {
				if !errors.Is(err, cause) {
					t.Errorf("errors.Is(err, %q) is false", cause)
				}
			}
			var pe *target.PrivilegeError
			if errors.As(err, &pe) != (tt.err.Privilege != nil) {
				t.Errorf("errors.As(err, *target.PrivilegeError) = %v, want %v", pe != nil, tt.err.Privilege != nil)
			}
		})
	}
}
