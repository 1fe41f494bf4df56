package cli

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/diagnose"
	"github.com/cpuwhy/cpuwhy/internal/verdict"
	"github.com/cpuwhy/cpuwhy/test/containertest"
	"github.com/cpuwhy/cpuwhy/test/scenario"
)

// decodeDiagnosis decodes `cpuwhy --json` and checks the fields other
// tooling relies on are there by name.
func decodeDiagnosis(t *testing.T, out string) *diagnose.Report {
	t.Helper()
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatalf("decoding %q: %v", out, err)
	}
	for _, k := range []string{"target", "threads", "verdicts", "cpuwhy"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("report lacks %q", k)
		}
	}
	var verdicts []map[string]json.RawMessage
	_ = json.Unmarshal(raw["verdicts"], &verdicts)
	for _, v := range verdicts {
		for _, k := range []string{"pattern", "thread", "cpu", "syscall", "errno", "fd", "stack", "summary", "evidence", "advice"} {
			if _, ok := v[k]; !ok {
				t.Errorf("verdict lacks %q", k)
			}
		}
	}
	var r diagnose.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

// The seed's case in one command: the server in its container, named by
// its container, from the host.
func TestDiagnoseContainer(t *testing.T) {
	c := startBusyPoll(t)
	code, out, errOut := run(t, "--container", c.Name, "-d", "2s", "--json",
		"--docker-data-root", c.DataRoot, "--docker-socket", "/nonexistent")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	r := decodeDiagnosis(t, out)
	tg := r.Target
	if tg.PID != c.HostPID || tg.NsPID != 1 || tg.Container == nil || tg.Container.Name != c.Name || tg.Container.ID != c.ID {
		t.Errorf("target %+v (container %+v), want host PID %d, ns PID 1, container %s", tg, tg.Container, c.HostPID, c.Name)
	}
	if len(r.Threads) == 0 || r.Threads[0].Name != "NatThreadMain" {
		t.Errorf("hottest thread %+v, want NatThreadMain", r.Threads)
	}
	v := r.Verdicts[0]
	if v.Pattern != "busy_poll" || v.Thread.Name != "NatThreadMain" || deref(v.Syscall) != "recvfrom" || deref(v.Errno) != "EAGAIN" ||
		!strings.Contains(deref(v.FD), "udp 127.0.0.1:1701") {
		t.Errorf("verdict %+v, want busy_poll of NatThreadMain in recvfrom EAGAIN on udp 127.0.0.1:1701", v)
	}
	if len(v.Stack) < 4 || !strings.Contains(v.Stack[0], "recvfrom") || v.Stack[1] != "RecvFrom" ||
		!strings.HasPrefix(v.Stack[2], "vpnserver+0x") || v.Stack[3] != "start_thread" {
		t.Errorf("stack %q, want recvfrom <- RecvFrom <- vpnserver+0x... <- start_thread", v.Stack)
	}
	if r.Cpuwhy.CPU <= 0 || r.Cpuwhy.Elapsed < 2 {
		t.Errorf("cpuwhy's cost %+v", r.Cpuwhy)
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// The text report names the container, the thread, the verdict and its
// fix, in one screen.
func TestDiagnoseText(t *testing.T) {
	c := startBusyPoll(t)
	code, out, errOut := run(t, strconv.Itoa(c.HostPID), "-d", "1s",
		"--docker-data-root", c.DataRoot, "--docker-socket", "/nonexistent")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	t.Logf("\n%s", out)
	for _, want := range []string{
		"cpuwhy: vpnserver (PID " + strconv.Itoa(c.HostPID) + ") in docker container " + c.Name,
		"PID 1 inside", "NatThreadMain", "VERDICT 1: busy_poll", "syscall recvfrom, errno EAGAIN, fd 3 (udp 127.0.0.1:1701)",
		"stack: recvfrom <- RecvFrom <- vpnserver+0x", "fix: ", "cpuwhy used ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if n := strings.Count(out, "\n"); n > 40 {
		t.Errorf("report of %d lines does not fit a screen", n)
	}
	if errOut != "" {
		t.Errorf("stderr without a terminal: %q", errOut)
	}
}

// With no target, the busiest process is diagnosed: the spinning one, not
// the idle ones beside it.
func TestDiagnoseBusiest(t *testing.T) {
	startProgram(t, "idle")
	startProgram(t, "threads", "50", "1")
	spin := startProgram(t, "busypoll", "1703")
	code, out, errOut := run(t, "-d", "1s", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	r := decodeDiagnosis(t, out)
	if r.Target.PID != spin.Process.Pid && scenario.Busier(t, r.Target.PID, spin.Process.Pid) {
		t.Logf("diagnosed %s (PID %d), another test's process as busy as the busypoll", r.Target.Name, r.Target.PID)
	} else if r.Target.PID != spin.Process.Pid || r.Verdicts[0].Pattern != "busy_poll" {
		t.Errorf("diagnosed %+v with %s, want the busypoll scenario (PID %d)", r.Target, r.Verdicts[0].Pattern, spin.Process.Pid)
	}
	if p := r.Target.Picked; p == nil || p.Among != "the host" || p.Window != selectWindow || p.CPU < verdict.BusyCPU {
		t.Errorf("picked %+v, want the host's busiest over %v", p, selectWindow)
	}
}

// idleProc writes a proc tree where nothing runs: two processes whose
// figures never move, so the busiest of them uses 0% of a core.
func idleProc(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for pid, comm := range map[int]string{1: "init", 40: "sshd"} {
		task := filepath.Join(root, strconv.Itoa(pid), "task", strconv.Itoa(pid))
		if err := os.MkdirAll(task, 0o755); err != nil {
			t.Fatal(err)
		}
		stat := fmt.Sprintf("%d (%s) S 0 %d %d 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 16979 3133440 412 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n", pid, comm, pid, pid)
		for _, dir := range []string{filepath.Dir(filepath.Dir(task)), task} {
			if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

// TestDiagnoseNothingBusy: with no target and nothing at --min-cpu, the
// diagnosis is one line naming the busiest process with its figure, exit
// 0, and no window watched. An idle host cannot be had on a shared test
// machine, so it is made two ways: a proc tree where nothing moves (the
// default threshold, the exact line), and the real host with a threshold
// no process reaches (ten cores on this machine).
func TestDiagnoseNothingBusy(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want *regexp.Regexp
	}{
		{"idle proc tree", []string{"--proc", idleProc(t)},
			regexp.MustCompile(`^cpuwhy: nothing is busy: the busiest process, init \(PID 1\), used 0\.0% of a core over 0\.5 s \(below 10%\); name a process \(PID, --name, --container\) to examine it anyway\n$`)},
		{"idle proc tree, json", []string{"--proc", idleProc(t), "--json"},
			regexp.MustCompile(`^\{"nothing_busy":\{"pid":1,"name":"init","cpu":0,"window_s":0\.5,"min_cpu":10,"interrupts_cpu":0\}\}\n$`)},
		{"real host", []string{"--min-cpu", "1000"}, nothingBusyLine},
	}
	cpuwhyBinary(t) // built before the clock starts
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			code, out, errOut := runBinary(t, nil, append(tt.args, "-d", "10s")...)
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q; want 0 and nothing", code, errOut)
			}
			if !tt.want.MatchString(out) {
				t.Errorf("stdout %q, want %s", out, tt.want)
			}
			// The selection's half second, not the 10 s window.
			if d := time.Since(start); d > 8*time.Second {
				t.Errorf("took %v: the window was watched", d)
			}
		})
	}
}

// TestDiagnoseFiguresAgree: the header's CPU is the sum of the thread
// table's (its row of exited threads included, none here), in text and JSON. The
// process's own stat and its threads' are truncated to ticks apart, and
// four threads each crossing ticks of their own made them differ by a
// tick or more (0.4% against 0.9% on an idle PID 1).
func TestDiagnoseFiguresAgree(t *testing.T) {
	pid := strconv.Itoa(startProgram(t, "threads", "8", "4").Process.Pid)
	for round := range 2 {
		code, out, errOut := runBinary(t, nil, "-d", "1s", "--json", pid)
		if code != 0 {
			t.Fatalf("round %d: exit %d: %s", round, code, errOut)
		}
		r := decodeDiagnosis(t, out)
		var rows float64
		for _, th := range r.Threads {
			rows += th.CPU
		}
		// Each row and the header are rounded to 0.1 apart.
		slack := 0.05 * float64(len(r.Threads)+1)
		if d := math.Abs(r.Target.CPU - rows); d > slack { // the rows include the one of exited threads
			t.Errorf("round %d: header %.1f%% (%.1f%% in exited threads), rows sum to %.1f%%: %.2f apart", round, r.Target.CPU, r.Target.Exited, rows, d)
		}
	}
}

func TestDiagnoseBadInput(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"tpo"}, 2, `"tpo" is neither a PID nor a command`},
		{[]string{"4194303"}, 1, "no process has PID 4194303"},
		{[]string{"999999999"}, 2, `"999999999" is not a PID (1 to 4,194,304)`},
		{[]string{"--container", "no-such-container-here", "--docker-socket", "/nonexistent", "--docker-data-root", "/nonexistent"}, 1, "no-such-container-here"},
		{[]string{"1", "-d", "0s"}, 2, "-d 0s"},
		{[]string{"1", "-o", "x.txt"}, 2, ".pb.gz"},
	}
	for _, tt := range tests {
		code, out, errOut := run(t, tt.args...)
		if code != tt.code || !strings.Contains(errOut, tt.want) || strings.Count(errOut, "\n") != 1 || out != "" {
			t.Errorf("cpuwhy %q: exit %d, stdout %q, stderr %q; want exit %d and one line with %q", tt.args, code, out, errOut, tt.code, tt.want)
		}
	}
}

// Without the capabilities, the diagnosis says which are missing and what
// still works, in one line, at once.
func TestDiagnoseUnprivileged(t *testing.T) {
	cmd := startProgram(t, "compute")
	code, out, errOut := runBinary(t, &syscall.Credential{Uid: 65534, Gid: 65534}, "-d", "1s", strconv.Itoa(cmd.Process.Pid))
	if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 {
		t.Fatalf("exit %d, stdout %q, stderr %q: want exit 1 and one line", code, out, errOut)
	}
	for _, want := range []string{"missing CAP_BPF", "CAP_PERFMON", "CAP_SYS_PTRACE", "still works"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr %q lacks %q", errOut, want)
		}
	}
}

// A target that exits inside the window: one line, exit 1.
func TestDiagnoseTargetExits(t *testing.T) {
	cmd := startProgram(t, "spawner", "1500")
	code, out, errOut := runBinary(t, nil, "-d", "3s", strconv.Itoa(cmd.Process.Pid))
	if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "exited during the window") {
		t.Errorf("exit %d, stdout %q, stderr %q: want exit 1 and one line saying it exited", code, out, errOut)
	}
}

// On a terminal, progress each second on stderr; Ctrl-C gives the verdict
// on what was seen so far.
func TestDiagnoseProgress(t *testing.T) {
	pid := strconv.Itoa(startProgram(t, "busypoll", "1705").Process.Pid)
	tm := newTmux(t, cpuwhyBinary(t)+" -d 30s "+pid+"; sleep 60")
	tm.waitFor("the header and the first second counted", func(s string) bool {
		return strings.Contains(s, "cpuwhy: watching "+pid+" (vpnserver) for 30s") && strings.Contains(s, "    1s / 30s")
	})
	tm.keys("C-c")
	s := tm.waitFor("the verdict", func(s string) bool { return strings.Contains(s, "cpuwhy used ") })
	for _, want := range []string{"\ncpuwhy: vpnserver (PID " + pid + ")", "VERDICT 1: busy_poll", "note: interrupted after "} {
		if !strings.Contains(s, want) {
			t.Errorf("screen lacks %q:\n%s", want, s)
		}
	}
}

// JIT code in a container is diagnosed by the names its perf map gives
// it: the compute loop's verdict, stack, fix and (when shown) hottest
// instructions name jit_first, not [anon]+0xADDRESS.
func TestDiagnoseJIT(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skipf("unwinding is implemented for amd64 only, not %s", runtime.GOARCH)
	}
	prog := scenario.Build(t, "jitmap")
	c := containertest.Start(t, containertest.Config{Program: prog.Path, Files: prog.Files})
	c.WaitReady(t, 10*time.Second)
	code, out, errOut := run(t, "--container", c.Name, "-d", "1s",
		"--docker-data-root", c.DataRoot, "--docker-socket", "/nonexistent")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"VERDICT 1: compute_loop — jitter", "computes in user space, in jit_first,",
		"stack: jit_first <- run_jit <- jitter <- start_thread", "fix: look at the loop in jit_first:",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	// The listing of the hottest instructions comes only when the thread
	// got 20% of a core, which a loaded machine may not give it; when it
	// comes, it names the function too.
	if strings.Contains(out, "[anon]") || strings.Contains(out, "hottest instructions of") && !strings.Contains(out, "hottest instructions of jit_first (") {
		t.Errorf("report names anonymous code by address:\n%s", out)
	}
}

// A kernel thread named to the diagnosis is explained, not refused
// (kthreadd, idle: healthy, with the note that it makes no syscalls); the
// commands that examine user space still refuse it.
func TestDiagnoseKernelThread(t *testing.T) {
	code, out, errOut := run(t, "-d", "300ms", "2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"cpuwhy: kthreadd (PID 2)", "host: ", "VERDICT 1: ", "a kernel thread makes no system calls"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	code, _, errOut = run(t, "syscalls", "-d", "300ms", "2")
	if code == 0 || !strings.Contains(errOut, "is a kernel thread") {
		t.Errorf("syscalls on a kernel thread: exit %d, %q", code, errOut)
	}
}

// The first case: the seed's busy poll in its container, capped
// at 0.2 of a core (docker run --cpus 0.2), named by its container: the
// busy poll first, then the limit of the container's own cgroup
// (/docker/ID) that throttled it. The container's cgroups are weighted
// above the other work on the machine, so that the loop can use its
// quota in a period whatever that load is.
func TestDiagnoseCappedContainer(t *testing.T) {
	prog := scenario.Build(t, "busypoll")
	c := containertest.Start(t, containertest.Config{
		Program: prog.Path, Files: prog.Files, Args: []string{"1711"}, Network: true,
		Name: "vpn-capped-" + strconv.Itoa(os.Getpid()), CPUs: 0.2,
	})
	c.WaitReady(t, 10*time.Second)
	for _, dir := range c.CgroupDirs {
		for file, weight := range map[string]string{"cpu.shares": "262144", "cpu.weight": "10000"} {
			if _, err := os.Stat(filepath.Join(dir, file)); err == nil {
				if err := os.WriteFile(filepath.Join(dir, file), []byte(weight), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	code, out, errOut := run(t, "--container", c.Name, "-d", "2s", "--json",
		"--docker-data-root", c.DataRoot, "--docker-socket", "/nonexistent")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	r := decodeDiagnosis(t, out)
	var got []string
	for _, v := range r.Verdicts {
		got = append(got, string(v.Pattern)+": "+v.Summary)
	}
	if len(r.Verdicts) < 2 || r.Verdicts[0].Pattern != "busy_poll" {
		t.Fatalf("verdicts:\n%s\nwant busy_poll first", strings.Join(got, "\n"))
	}
	var throttled *verdict.Verdict
	for i := range r.Verdicts {
		if r.Verdicts[i].Pattern == verdict.Throttled {
			throttled = &r.Verdicts[i]
		}
	}
	if throttled == nil || !strings.Contains(throttled.Summary, "its cgroup /docker/"+c.ID) || !strings.Contains(throttled.Summary, "0.20 cores") {
		t.Fatalf("no throttled verdict on /docker/%s at 0.20 cores:\n%s", c.ID, strings.Join(got, "\n"))
	}
	t.Logf("%s\n  %s", throttled.Summary, strings.Join(throttled.Evidence, "\n  "))
}
