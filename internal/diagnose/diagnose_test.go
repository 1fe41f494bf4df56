package diagnose

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/proc"
	// The runtimes, as the commands link them in: a JVM's method is
	// named in the verdict.
	_ "github.com/cpuwhy/cpuwhy/internal/stack/runtimes"
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
	tg := target.Target{PID: cmd.Process.Pid, Name: name}
	opts := Options{
		FS: proc.FS{}, Duration: window,
		Tracers: []syscalls.Candidate{{Mechanism: syscalls.EBPF, New: func() syscalls.Tracer { return ebpf.New() }}},
	}
	run := func(t *testing.T, tg target.Target, opts Options) (*Result, error) {
		return Run(context.Background(), tg, opts)
	}
	if *recordEvidence != "" {
		run = diagnoseRecording
	}
	res, err := run(t, tg, opts)
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
	vs := r.Verdicts
	// Causes outside the code (a loaded machine starving the scenario)
	// are judged beside the code's verdicts: the first of the kind
	// wanted is checked.
	vs = slices.DeleteFunc(slices.Clone(vs), func(v verdict.Verdict) bool { return v.Pattern.Outside() != want.pattern.Outside() })
	if len(vs) == 0 {
		t.Fatal("no verdict")
	}
	v := vs[0]
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
	if want.pattern == verdict.Healthy && len(vs) != 1 {
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
		{"jvm gc pressure", "javahot", []string{"gc"}, expect{pattern: verdict.GCPressure}},
		{"jvm jit compilation", "javahot", []string{"jit"}, expect{pattern: verdict.JITCompilation, thread: "C2 CompilerThre"}},
		// The twin: a warm JVM, its compilers idle, its one hot method
		// compiled and named.
		{"jvm warm", "javahot", []string{"compute"}, expect{pattern: verdict.ComputeLoop, frame: "Hot.computeLoop"}},
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
			checkCounting(t, tt.name, r)
		})
	}
}

// checkCounting: the seed's poll, millions of calls a second, is judged
// on counts made in slices of the window, which the report says; every
// paced twin, a few thousand calls a second at most, on every call.
func checkCounting(t *testing.T, name string, r *Report) {
	t.Helper()
	c := r.Cpuwhy.Counting
	sampled := c != nil && c.Sampled
	said := slices.ContainsFunc(r.Notes, func(n string) bool { return strings.HasPrefix(n, "syscall counts are sampled") })
	t.Logf("counting: %+v", c)
	switch {
	case name == "busy poll" && (!sampled || !said || c.Slices < 2):
		t.Errorf("the busy poll's counts: %+v, notes %q; want sampled in slices, and said", c, r.Notes)
	case strings.HasSuffix(name, "paced") && (sampled || said || c == nil):
		t.Errorf("a paced scenario's counts: %+v, notes %q; want every call counted", c, r.Notes)
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

// TestOneMeasurement: the header's CPU is the sum of the thread table's,
// whatever the process's own stat says; the CPU of threads that exited
// during the window, which only the process's stat has, is the table's
// row of exited threads.
func TestOneMeasurement(t *testing.T) {
	const pid, other = 10, 11
	at := func(sec int, group proc.Stat, threads ...proc.Stat) Reading {
		return Reading{
			Taken:     time.Unix(1000, 0).Add(time.Duration(sec) * time.Second),
			SinceBoot: time.Duration(100+sec) * time.Second,
			Process:   proc.Process{Stat: group, Threads: threads},
			Sched:     map[int]proc.Sched{},
		}
	}
	stat := func(tid int, user, system uint64) proc.Stat {
		return proc.Stat{PID: tid, Comm: "p", State: 'S', UTime: user, STime: system, StartTime: uint64(tid)}
	}
	tests := []struct {
		name         string
		snap0, snap1 Reading
		cpu, user    float64 // header, percent of a core over the 1 s window
		exited       float64
		rowsSum      float64
	}{
		{
			// An idle daemon: its thread's stat crossed a tick, the
			// process's did not (the same nanoseconds, truncated apart).
			name:  "a tick apart",
			snap0: at(0, stat(pid, 1000, 500), stat(pid, 600, 300), stat(other, 400, 200)),
			snap1: at(1, stat(pid, 1000, 500), stat(pid, 601, 300), stat(other, 400, 200)),
			cpu:   1, user: 1, rowsSum: 1,
		},
		{
			// The process's figure a tick above its threads': no thread
			// exited, so the tick is truncation, not a missing row.
			name:  "process a tick above",
			snap0: at(0, stat(pid, 1000, 500), stat(pid, 600, 300), stat(other, 400, 200)),
			snap1: at(1, stat(pid, 1001, 500), stat(pid, 600, 300), stat(other, 400, 200)),
			cpu:   0, user: 0, rowsSum: 0,
		},
		{
			// Thread 11 ran 30 ticks and exited: only the process's
			// stat has them, and the row of exited threads shows them.
			name:  "a thread exited",
			snap0: at(0, stat(pid, 1000, 500), stat(pid, 600, 300), stat(other, 400, 200)),
			snap1: at(1, stat(pid, 1050, 500), stat(pid, 620, 300)),
			cpu:   50, user: 50, exited: 30, rowsSum: 50,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, r := observe(target.Target{PID: pid, Name: "p"}, Options{FS: proc.FS{Root: t.TempDir()}}.withDefaults(), tt.snap0, tt.snap1, nil, nil)
			var rows, exitedRow float64
			for _, th := range r.Threads {
				rows += th.CPU
				if th.Exited > 0 {
					exitedRow += th.CPU
					if th.TID != 0 || th.Exited != 1 {
						t.Errorf("row of exited threads: TID %d, %d threads; want TID 0, 1 thread", th.TID, th.Exited)
					}
				}
			}
			if r.Target.CPU != tt.cpu || r.Target.User != tt.user || r.Target.Exited != tt.exited || rows != tt.rowsSum {
				t.Errorf("header %.1f%% (%.1f user, %.1f exited), rows %.1f%%; want %.1f%% (%.1f user, %.1f exited), rows %.1f%%",
					r.Target.CPU, r.Target.User, r.Target.Exited, rows, tt.cpu, tt.user, tt.exited, tt.rowsSum)
			}
			if r.Target.CPU != rows || r.Target.Exited != exitedRow {
				t.Errorf("header %.1f%% with %.1f%% exited; rows %.1f%% with %.1f%% in the row of exited threads", r.Target.CPU, r.Target.Exited, rows, exitedRow)
			}
		})
	}
}

// TestHeaderLines: the header gives the CPU of exited threads when there
// is some, and a target nobody named says why it was picked, without the
// selection's figure: the header's is the one figure of the process.
func TestHeaderLines(t *testing.T) {
	r := &Report{
		Target: Target{PID: 10, Name: "p", CPU: 50, User: 50, Exited: 30,
			Picked: &target.Pick{Among: "the host", Window: 500 * time.Millisecond, CPU: 48.2}},
		Window:   1,
		Verdicts: []verdict.Verdict{{Pattern: verdict.Healthy}},
	}
	var b strings.Builder
	if err := WriteText(&b, r, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	want := []string{
		"cpuwhy: p (PID 10): 50.0% of a core over 1.0 s (50.0 user, 0.0 system; 30.0 in threads that exited)",
		"picked as the busiest process of the host over 0.5 s (name a process to choose another)",
	}
	if len(lines) < 2 || lines[0] != want[0] || lines[1] != want[1] {
		t.Errorf("header\n%s\nwant\n%s", strings.Join(lines[:min(2, len(lines))], "\n"), strings.Join(want, "\n"))
	}
	if strings.Contains(b.String(), "48.2") {
		t.Errorf("the selection's figure is in the report:\n%s", b.String())
	}
}
