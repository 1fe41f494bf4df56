package diagnose

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/syscalls"
	"github.com/cpuwhy/cpuwhy/internal/syscalls/ebpf"
	"github.com/cpuwhy/cpuwhy/internal/target"
	"github.com/cpuwhy/cpuwhy/internal/verdict"
	"github.com/cpuwhy/cpuwhy/test/containertest"
	"github.com/cpuwhy/cpuwhy/test/privtest"
	"github.com/cpuwhy/cpuwhy/test/scenario"
)

func TestMain(m *testing.M) { containertest.Main(m) }

// window is short: the scenarios are steady, and each case costs it.
const window = 2 * time.Second

func diagnoseProcess(t *testing.T, cmd *exec.Cmd, name string) *Report {
	t.Helper()
	res, err := Run(context.Background(), target.Target{PID: cmd.Process.Pid, Name: name}, Options{
		FS: proc.FS{}, Duration: window,
		Tracers: []syscalls.Candidate{{Mechanism: syscalls.EBPF, New: func() syscalls.Tracer { return ebpf.New() }}},
	})
	if errors.Is(err, syscalls.ErrNotSupported) || errors.Is(err, os.ErrPermission) {
		privtest.Require(t, fmt.Sprintf("diagnosis needs BPF, perf events and ptrace: %v", err))
	}
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.Join(res.Report.Notes, "\n"), "no syscall profile") || strings.Contains(strings.Join(res.Report.Notes, "\n"), "no stack samples") {
		privtest.Require(t, fmt.Sprintf("an instrument failed: %q", res.Report.Notes))
	}
	return res.Report
}

// expect is what a scenario's first verdict must say; empty fields are not
// checked.
type expect struct {
	pattern verdict.Pattern
	thread  string
	syscall string
	errno   string
	fd      string // a substring of the fd
	frame   string // a function on the stack (or the hot code's)
}

func check(t *testing.T, r *Report, want expect) {
	t.Helper()
	if len(r.Verdicts) == 0 {
		t.Fatal("no verdict")
	}
	v := r.Verdicts[0]
	t.Logf("%s: %s %s\n  %s", v.Pattern, v.Thread.Name, v.Summary, strings.Join(v.Evidence, "\n  "))
	if v.Pattern != want.pattern {
		t.Fatalf("pattern %s, want %s (all: %+v)", v.Pattern, want.pattern, r.Verdicts)
	}
	if want.thread != "" && v.Thread.Name != want.thread {
		t.Errorf("thread %q, want %q", v.Thread.Name, want.thread)
	}
	for _, f := range []struct {
		what      string
		got       *string
		want      string
		substring bool
	}{{"syscall", v.Syscall, want.syscall, false}, {"errno", v.Errno, want.errno, false}, {"fd", v.FD, want.fd, true}} {
		if f.want == "" {
			continue
		}
		if f.got == nil || !f.substring && *f.got != f.want || f.substring && !strings.Contains(*f.got, f.want) {
			t.Errorf("%s = %v, want %q", f.what, derefString(f.got), f.want)
		}
	}
	if want.frame != "" {
		where := strings.Join(v.Stack, " <- ")
		if v.Code != nil {
			where += " | code in " + v.Code.Function
		}
		if !strings.Contains(where, want.frame) {
			t.Errorf("stack %q lacks %q", where, want.frame)
		}
	}
	if want.pattern == verdict.Healthy && len(r.Verdicts) != 1 {
		t.Errorf("healthy and more: %+v", r.Verdicts)
	}
}

func derefString(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

// TestPatterns diagnoses every pattern's scenario on the host, and the
// same program paced (RATE) on the healthy side of the threshold.
func TestPatterns(t *testing.T) {
	tests := []struct {
		name     string
		scenario string
		args     []string
		want     expect
	}{
		{"busy poll", "busypoll", []string{"1702"}, expect{pattern: verdict.BusyPoll, thread: "NatThreadMain", syscall: "recvfrom", errno: "EAGAIN", fd: "udp 127.0.0.1:1702", frame: "RecvFrom"}},
		{"busy poll paced", "busypoll", []string{"1704", "500"}, expect{pattern: verdict.Healthy}},
		{"error loop", "refused", nil, expect{pattern: verdict.ErrorLoop, thread: "UdpClient", syscall: "recvfrom", errno: "ECONNREFUSED", fd: "udp 127.0.0.1:", frame: "recv"}},
		{"error loop paced", "refused", []string{"500"}, expect{pattern: verdict.Healthy}},
		{"zero-timeout poll", "zeropoll", []string{"0", "poll"}, expect{pattern: verdict.ZeroTimeoutPoll, thread: "Poller", syscall: "poll", frame: "poll"}},
		{"zero-timeout epoll_wait", "zeropoll", []string{"0", "epoll"}, expect{pattern: verdict.ZeroTimeoutPoll, thread: "Poller", syscall: "epoll_wait", fd: "epoll"}},
		{"zero-timeout poll paced", "zeropoll", []string{"500", "epoll"}, expect{pattern: verdict.Healthy}},
		{"sched_yield spin", "spinyield", []string{"0", "yield"}, expect{pattern: verdict.SpinYield, thread: "Spinner", syscall: "sched_yield"}},
		{"pause spin", "spinyield", []string{"0", "spin"}, expect{pattern: verdict.SpinYield, thread: "Spinner", frame: "spin_wait_for_work"}},
		{"spin paced", "spinyield", []string{"500", "spin"}, expect{pattern: verdict.Healthy}},
		{"lock contention", "lockstorm", nil, expect{pattern: verdict.LockContention, thread: "Worker", syscall: "futex"}},
		{"lock paced", "lockstorm", []string{"2000"}, expect{pattern: verdict.Healthy}},
		{"compute loop", "compute", nil, expect{pattern: verdict.ComputeLoop, thread: "cruncher", frame: "crunch_numbers"}},
		{"C++ compute loop", "cxxhot", nil, expect{pattern: verdict.ComputeLoop, thread: "pump", frame: "vpn::Session::pump"}},
		{"stripped Go compute loop", "gostripped", nil, expect{pattern: verdict.ComputeLoop, frame: "main.spin"}},
		{"nanosleep storm", "timerstorm", []string{"0", "sleep"}, expect{pattern: verdict.TimerStorm, thread: "Ticker", syscall: "clock_nanosleep"}},
		{"timerfd storm", "timerstorm", []string{"0", "timerfd"}, expect{pattern: verdict.TimerStorm, thread: "Ticker", syscall: "read", fd: "timerfd"}},
		{"timer paced", "timerstorm", []string{"500", "sleep"}, expect{pattern: verdict.Healthy}},
		{"write storm", "writestorm", nil, expect{pattern: verdict.WriteStorm, thread: "Logger", syscall: "write", fd: "writestorm"}},
		{"write paced", "writestorm", []string{"500"}, expect{pattern: verdict.Healthy}},
		{"process churn", "churn", nil, expect{pattern: verdict.ProcessChurn, thread: "Supervisor"}},
		{"churn paced", "churn", []string{"5"}, expect{pattern: verdict.Healthy}},
		{"gc pressure", "gcpressure", nil, expect{pattern: verdict.GCPressure, thread: "Allocator"}},
		{"gc paced", "gcpressure", []string{"1000"}, expect{pattern: verdict.Healthy}},
		{"kernel bound", "kernelbound", nil, expect{pattern: verdict.KernelBound, thread: "Copier", syscall: "read", fd: "/dev/zero"}},
		{"kernel paced", "kernelbound", []string{"5"}, expect{pattern: verdict.Healthy}},
		{"busy healthy server", "echoserver", nil, expect{pattern: verdict.Healthy}},
		{"idle", "idle", nil, expect{pattern: verdict.Healthy}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := scenario.Build(t, tt.scenario).Start(t, nil, tt.args...)
			r := diagnoseProcess(t, cmd, tt.scenario)
			check(t, r, tt.want)
		})
	}
}

// The compute loop's verdict shows its hottest instructions, decoded from
// the target's memory, with the samples on them.
func TestComputeCode(t *testing.T) {
	cmd := scenario.Build(t, "compute").Start(t, nil)
	r := diagnoseProcess(t, cmd, "compute")
	check(t, r, expect{pattern: verdict.ComputeLoop, thread: "cruncher", frame: "crunch_numbers"})
	c := r.Verdicts[0].Code
	if c == nil || c.Function != "crunch_numbers" || len(c.Instructions) < 2 {
		t.Fatalf("code %+v", c)
	}
	var n int
	for _, in := range c.Instructions {
		n += in.Samples
		if in.Text == "" || strings.HasPrefix(in.Text, ".byte") {
			t.Errorf("instruction %#x decoded as %q", in.Addr, in.Text)
		}
	}
	if n < c.Samples/2 {
		t.Errorf("instructions shown hold %d of the function's %d samples", n, c.Samples)
	}
}
