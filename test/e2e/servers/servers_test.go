package servers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/diagnose"
	"github.com/cpuwhy/cpuwhy/internal/proc"
	// The runtimes `cpuwhy` links in (Python's among them), so that a
	// diagnosis here names frames as the command's does.
	_ "github.com/cpuwhy/cpuwhy/internal/stack/runtimes"
	"github.com/cpuwhy/cpuwhy/internal/syscalls"
	"github.com/cpuwhy/cpuwhy/internal/syscalls/ebpf"
	"github.com/cpuwhy/cpuwhy/internal/target"
	"github.com/cpuwhy/cpuwhy/internal/verdict"
	"github.com/cpuwhy/cpuwhy/test/containertest"
	"github.com/cpuwhy/cpuwhy/test/privtest"
)

func TestMain(m *testing.M) { containertest.Main(m) }

const (
	// loadedCPU is the CPU (percent of one core) the diagnosed process
	// must reach under load before the diagnosis starts: twice what
	// cpuwhy calls busy, so that "healthy" is the verdict on a busy
	// server, not on an idle one. The servers reach far more on a quiet
	// two-core machine (a client shares the cores); this leaves room for
	// a loaded one.
	loadedCPU = 2 * verdict.BusyCPU

	// loadTimeout bounds the wait for loadedCPU.
	loadTimeout = 15 * time.Second

	// measure is the interval over which the load is measured.
	measure = 500 * time.Millisecond
)

// server is one real server under load from its own client.
type server struct {
	name     string
	binaries []string // what the Debian packages below install
	packages string
	port     int
	// start writes the server's configuration into dir and returns the
	// command that runs it in the foreground.
	start func(t *testing.T, dir string) *exec.Cmd
	// client is the load generator, run until the test stops it with
	// SIGINT.
	client []string
	// candidates lists the processes to diagnose, given the server's
	// PID: the busiest is diagnosed.
	candidates func(t *testing.T, pid int) []int
	// rate reads the requests per second from the client's output.
	rate *regexp.Regexp
}

var servers = []server{
	{
		name:     "redis",
		binaries: []string{"redis-server", "redis-benchmark"},
		packages: "redis-server redis-tools",
		port:     6379,
		start: func(t *testing.T, dir string) *exec.Cmd {
			// No persistence: nothing on disk but the log.
			writeFile(t, filepath.Join(dir, "redis.conf"), fmt.Sprintf(`bind 127.0.0.1
port 6379
protected-mode yes
daemonize no
save ""
appendonly no
dir %[1]s
logfile %[1]s/redis.log
`, dir))
			return exec.Command(lookPath("redis-server"), filepath.Join(dir, "redis.conf"))
		},
		// SETs of random keys among 100000 by 50 clients, far more
		// than the test waits for.
		client:     []string{"redis-benchmark", "-h", "127.0.0.1", "-p", "6379", "-c", "50", "-n", "100000000", "-r", "100000", "-t", "set", "-q"},
		candidates: func(t *testing.T, pid int) []int { return []int{pid} },
		// -q prints "SET: rps=54860.6 (overall: 37319.4) avg_msec=..."
		// a few times a second.
		rate: regexp.MustCompile(`rps=[0-9.]+ \(overall: ([0-9.]+)\)`),
	},
	// A small page to 50 keep-alive connections: the worker's CPU is
	// in the kernel, and epoll_wait, waiting ~300µs a call, holds most
	// of its syscall time (it was once taken for kernel_bound).
	nginx("nginx", "index.html", 3<<10, "-c50"),
	// 1 MiB files with sendfile: each sendfile is long and on the CPU,
	// and the workers wait for wrk to drain the sockets.
	nginx("nginx 1MiB", "big.bin", 1<<20, "-c10"),
	postgres(),
}

// postgres serves read-only pgbench transactions (-S: one indexed SELECT
// each) to two clients over TCP. A backend reads each query with a
// non-blocking recvfrom, which fails with EAGAIN (tens of thousands a
// second) whenever the next query has not arrived yet, and then waits in
// epoll_wait: a server at work, whose EAGAINs once sat beside a line
// saying no fruitless call was repeated.
func postgres() server {
	return server{
		name:     "postgres",
		binaries: []string{"initdb", "postgres", "pgbench"},
		packages: "postgresql",
		port:     5432,
		start: func(t *testing.T, dir string) *exec.Cmd {
			// postgres refuses to run as root: the cluster is
			// nobody's, made by initdb (a few seconds) in dir.
			nobody := &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			data := filepath.Join(dir, "data")
			if err := os.Chown(dir, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			initdb := exec.Command(lookPath("initdb"), "-D", data, "-U", "postgres", "-A", "trust", "--no-sync")
			initdb.SysProcAttr = nobody
			if out, err := initdb.CombinedOutput(); err != nil {
				t.Fatalf("initdb: %v: %s", err, out)
			}
			cmd := exec.Command(lookPath("postgres"), "-D", data, "-k", dir,
				"-c", "listen_addresses=127.0.0.1", "-c", "port=5432", "-c", "fsync=off")
			cmd.SysProcAttr = nobody
			return cmd
		},
		// The tables first (scale 1: 100,000 accounts), then SELECTs
		// with a progress line every second.
		client: []string{"sh", "-c", "pgbench -h 127.0.0.1 -U postgres -i -s 1 postgres >/dev/null 2>&1 && " +
			"exec pgbench -h 127.0.0.1 -U postgres -S -c 2 -j 1 -T 120 -P 1 postgres 2>&1"},
		// The postmaster only supervises: a backend per client serves.
		candidates: backends,
		// -P 1 prints "progress: 3.0 s, 9512.4 tps, lat 0.210 ms stddev ..."
		rate: regexp.MustCompile(`progress: [0-9.]+ s, ([0-9.]+) tps`),
	}
}

// nginx serves one static file of size bytes to wrk with the given
// connections.
func nginx(name, file string, size int, connections string) server {
	return server{
		name:     name,
		binaries: []string{"nginx", "wrk"},
		packages: "nginx-light wrk",
		port:     8080,
		start: func(t *testing.T, dir string) *exec.Cmd {
			// The workers run as nobody: they must read the file.
			if err := os.Chmod(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			www := filepath.Join(dir, "www")
			if err := os.Mkdir(www, 0o755); err != nil {
				t.Fatal(err)
			}
			line := "<p>a static page served to wrk by nginx, for cpuwhy</p>\n"
			writeFile(t, filepath.Join(www, file), strings.Repeat(line, size/len(line)+1)[:size])
			// Debian's defaults where they matter (sendfile,
			// tcp_nopush, keep-alive), two workers, no access log,
			// every path in dir.
			writeFile(t, filepath.Join(dir, "nginx.conf"), fmt.Sprintf(`daemon off;
master_process on;
worker_processes 2;
user nobody nogroup;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 1024; }
http {
	access_log off;
	sendfile on;
	tcp_nopush on;
	keepalive_timeout 65;
	default_type text/html;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	server {
		listen 127.0.0.1:8080;
		root %[1]s/www;
	}
}
`, dir))
			return exec.Command(lookPath("nginx"), "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", filepath.Join(dir, "nginx.conf"))
		},
		client: []string{"wrk", "-t1", connections, "-d60s", "http://127.0.0.1:8080/" + file},
		// The master only supervises: the workers serve.
		candidates: func(t *testing.T, pid int) []int { return children(t, pid) },
		rate:       regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`),
	}
}

// TestServersUnderLoad diagnoses each server while its client loads it
// through loopback: a server doing its job must be healthy, or a compute
// loop in one of its own functions, and never get a bug verdict.
func TestServersUnderLoad(t *testing.T) {
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			for _, b := range srv.binaries {
				if lookPath(b) == "" {
					privtest.Require(t, fmt.Sprintf("%s is not installed (apt-get install %s)", b, srv.packages))
				}
			}
			underLoad(t, srv)
		})
	}
}

func underLoad(t *testing.T, srv server) {
	sb := containertest.NewSandbox(t)
	dir, err := os.MkdirTemp("", "cpuwhy-"+strings.Fields(srv.name)[0]+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) }) // after the sandbox is gone (cleanups run last first)

	server := srv.start(t, dir)
	var serverOut bytes.Buffer
	server.Stdout, server.Stderr = &serverOut, &serverOut
	server.WaitDelay = time.Second
	if err := sb.Start(server); err != nil {
		t.Fatal(err)
	}
	if err := waitListening(server.Process.Pid, srv.port, 10*time.Second); err != nil {
		t.Fatalf("%v; %s says: %s", err, srv.name, serverOut.String())
	}

	client := exec.Command(lookPath(srv.client[0]), srv.client[1:]...)
	var clientOut, clientErr bytes.Buffer
	client.Stdout, client.Stderr = &clientOut, &clientErr
	client.WaitDelay = time.Second
	if err := sb.Start(client); err != nil {
		t.Fatal(err)
	}

	pid, cpu, err := waitLoaded(srv.candidates(t, server.Process.Pid))
	if err != nil {
		t.Fatalf("%v; %s says: %s", err, srv.client[0], clientErr.String())
	}
	t.Logf("%s PID %d under load: %.0f%% of a core", srv.name, pid, cpu)

	r := diagnoseProcess(t, pid)

	// Stop the client first: wrk prints its summary on SIGINT.
	client.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- client.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		client.Process.Kill()
		<-done
	}
	if m := srv.rate.FindAllStringSubmatch(clientOut.String(), -1); len(m) > 0 {
		t.Logf("load: %s requests/s (%s)", m[len(m)-1][1], strings.Join(srv.client, " "))
	} else {
		t.Errorf("no request rate in %s's output: %q; stderr: %q", srv.client[0], clientOut.String(), clientErr.String())
	}

	var text bytes.Buffer
	if err := diagnose.WriteText(&text, r, diagnose.TextOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Logf("cpuwhy %d said:\n%s", pid, text.String())
	checkHealthy(t, r)
}

// checkHealthy checks that a server's diagnosis holds no bug verdict.
func checkHealthy(t *testing.T, r *diagnose.Report) {
	t.Helper()
	if r.Target.CPU < verdict.BusyCPU {
		t.Errorf("the server used %.1f%% of a core in the window, less than cpuwhy calls busy (%.0f%%): the load did not hold", r.Target.CPU, verdict.BusyCPU)
	}
	if len(r.Verdicts) == 0 {
		t.Fatal("no verdict")
	}
	if p := r.Verdicts[0].Pattern; p != verdict.Healthy && p != verdict.ComputeLoop {
		t.Errorf("first verdict %s, want healthy or compute_loop", p)
	}
	for _, v := range r.Verdicts {
		if v.Pattern.Outside() {
			// A cause outside the server's code (a loaded machine
			// starving it): not a bug in the server, but said.
			t.Logf("outside the server's code: %s: %s\n  %s", v.Pattern, v.Summary, strings.Join(v.Evidence, "\n  "))
			continue
		}
		switch v.Pattern {
		case verdict.Healthy:
		case verdict.ComputeLoop:
			fn := ""
			if v.Code != nil {
				fn = v.Code.Function
			} else if len(v.Stack) > 0 {
				fn = v.Stack[0]
			}
			if fn == "" {
				t.Errorf("compute_loop in thread %s names no function", v.Thread.Name)
			}
			t.Logf("compute_loop: thread %s in %s (stack %s)", v.Thread.Name, fn, strings.Join(v.Stack, " <- "))
		default:
			t.Errorf("false bug verdict %s on thread %s: %s\n  %s", v.Pattern, v.Thread.Name, v.Summary, strings.Join(v.Evidence, "\n  "))
		}
	}
}

// diagnoseProcess runs cpuwhy's diagnosis on pid as `cpuwhy PID` does,
// with the eBPF tracer.
func diagnoseProcess(t *testing.T, pid int) *diagnose.Report {
	t.Helper()
	return diagnoseWithProfile(t, pid).Report
}

// diagnoseWithProfile is diagnoseProcess with the profile of the window,
// whose stacks are named by every runtime the command links in.
func diagnoseWithProfile(t *testing.T, pid int) *diagnose.Result {
	t.Helper()
	ctx := context.Background()
	sel := &target.Selector{Proc: proc.FS{}}
	tg, err := sel.Select(ctx, target.Spec{PID: pid})
	if err != nil {
		t.Fatal(err)
	}
	res, err := diagnose.Run(ctx, tg, diagnose.Options{
		FS: proc.FS{}, Duration: diagnose.DefaultDuration,
		Tracers: []syscalls.Candidate{{Mechanism: syscalls.EBPF, New: func() syscalls.Tracer { return ebpf.New() }}},
	})
	if errors.Is(err, syscalls.ErrNotSupported) || errors.Is(err, os.ErrPermission) {
		privtest.Require(t, fmt.Sprintf("diagnosis needs BPF, perf events and ptrace: %v", err))
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range res.Report.Notes {
		if strings.Contains(n, "no syscall profile") || strings.Contains(n, "no stack samples") {
			privtest.Require(t, fmt.Sprintf("an instrument failed: %q", n))
		}
	}
	return res
}

// waitLoaded waits until the busiest of pids uses loadedCPU, and returns
// it with its CPU.
func waitLoaded(pids []int) (int, float64, error) {
	sc := proc.NewScanner(proc.FS{})
	deadline := time.Now().Add(loadTimeout)
	best, bestCPU := 0, 0.0
	for time.Now().Before(deadline) {
		s0, err := sc.Scan(proc.ScanOptions{PIDs: pids})
		if err != nil {
			return 0, 0, err
		}
		time.Sleep(measure)
		s1, err := sc.Scan(proc.ScanOptions{PIDs: pids})
		if err != nil {
			return 0, 0, err
		}
		best, bestCPU = 0, 0
		for _, u := range proc.Compare(s0, s1) {
			if best == 0 || u.CPU.Total > bestCPU {
				best, bestCPU = u.PID, u.CPU.Total
			}
		}
		if best != 0 && bestCPU >= loadedCPU {
			return best, bestCPU, nil
		}
	}
	return 0, 0, fmt.Errorf("processes %v not loaded after %v: the busiest, %d, used %.1f%% of a core, want %.0f%%", pids, loadTimeout, best, bestCPU, loadedCPU)
}

// backends lists the two backends the postmaster pid forks for pgbench's
// clients, waiting for them: its other children (checkpointer, writers)
// are there from the start, and pgbench -i's own backend comes and goes
// first. A backend's title names its client's address.
func backends(t *testing.T, pid int) []int {
	t.Helper()
	deadline := time.Now().Add(loadTimeout)
	for {
		var pids []int
		for _, c := range children(t, pid) {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", c)); err == nil && bytes.Contains(b, []byte("127.0.0.1(")) {
				pids = append(pids, c)
			}
		}
		if len(pids) >= 2 {
			return pids
		}
		if time.Now().After(deadline) {
			t.Fatalf("postgres %d started %d backends in %v, want 2", pid, len(pids), loadTimeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// children lists the child processes of pid (an nginx master's workers),
// waiting a little for them to be started.
func children(t *testing.T, pid int) []int {
	t.Helper()
	sc := proc.NewScanner(proc.FS{})
	deadline := time.Now().Add(5 * time.Second)
	for {
		snap, err := sc.Scan(proc.ScanOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var pids []int
		for _, p := range snap.Processes {
			if p.PPID == pid {
				pids = append(pids, p.PID)
			}
		}
		if len(pids) > 0 {
			return pids
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d started no children", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitListening waits until a TCP socket listens on 127.0.0.1:port in the
// network namespace of pid, read from its /proc/PID/net/tcp.
func waitListening(pid, port int, timeout time.Duration) error {
	want := fmt.Sprintf("0100007F:%04X", port) // the kernel's little-endian address, hex port
	deadline := time.Now().Add(timeout)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/tcp", pid))
		if err != nil {
			return fmt.Errorf("reading the sockets of %d: %w", pid, err)
		}
		if listening(b, want) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on 127.0.0.1:%d after %v", port, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// listening reports whether a /proc/net/tcp table has a socket in state
// LISTEN (0A) at local address addr.
func listening(table []byte, addr string) bool {
	for _, line := range strings.Split(string(table), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 3 && f[1] == addr && f[3] == "0A" {
			return true
		}
	}
	return false
}

// lookPath finds a program the way a root shell on Debian does (nginx is
// in /usr/sbin), or returns "".
func lookPath(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	dirs := []string{"/usr/sbin", "/usr/bin", "/sbin", "/bin"}
	// Debian keeps PostgreSQL's server programs under its major version.
	pg, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.Reverse(pg)
	for _, dir := range append(dirs, pg...) {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
