// Command agentidle measures what `cpuwhy agent` costs while nothing
// spikes, on a host of about 1,000 processes and 10,000 threads, its scans
// read both ways (one BPF program run, /proc) by two agents, beside
// the exporters Debian has that read the same /proc: node_exporter's
// processes collector (prometheus-node-exporter) and process-exporter
// (prometheus-process-exporter, every process in a group by its name).
// All run at once, in one run, for the same window, each scraped by the
// benchmark every -scrape (as a Prometheus would); the figures are each
// one's CPU over the window (utime+stime from /proc/PID/stat) in percent
// of one core, and its resident memory at the end and at its peak.
//
// The host is filled with the threads scenario: idle processes whose
// threads sleep in pause(2), so that the agent has a full /proc to scan
// and nothing to trigger on.
//
// Usage: go run ./bench/agentidle [-window 60s] [-processes 1000] [-threads 10000] [-scrape 15s]
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/cpuwhy/cpuwhy/bench/internal/cpuwhybin"
	"github.com/cpuwhy/cpuwhy/test/scenario"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "agentidle: %v\n", err)
		os.Exit(1)
	}
}

// subject is one program measured.
type subject struct {
	name   string
	cmd    *exec.Cmd
	scrape string // URL of its metrics
	log    bytes.Buffer
	cpu0   time.Duration
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flagSet(stderr)
	window := fs.Duration("window", time.Minute, "how long each is measured")
	procs := fs.Int("processes", 1000, "processes on the host during the window")
	threads := fs.Int("threads", 10000, "threads on the host during the window")
	scrape := fs.Duration("scrape", 15*time.Second, "how often each exporter is scraped")
	if err := fs.Parse(args); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "agentidle-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin, err := cpuwhybin.Build(tmp, stderr)
	if err != nil {
		return err
	}
	prog, err := scenario.Compile("threads")
	if err != nil {
		return err
	}
	p0, t0, err := countHost()
	if err != nil {
		return err
	}
	n := max(*procs-p0, 0)
	var started []*exec.Cmd
	defer func() {
		for _, c := range started {
			c.Process.Kill()
			c.Wait()
		}
	}()
	fmt.Fprintf(stderr, "starting %d idle processes\n", n)
	extra := max(*threads-t0-n, 0) // threads besides each process's main one
	for i := range n {
		k := extra / max(n, 1)
		if i < extra%max(n, 1) {
			k++
		}
		c, err := startIdle(ctx, prog.Path, max(k, 2)-1)
		if err != nil {
			return err
		}
		started = append(started, c)
	}
	p1, t1, err := countHost()
	if err != nil {
		return err
	}

	var subjects []*subject
	defer func() {
		for _, s := range subjects {
			s.cmd.Process.Signal(syscall.SIGTERM)
			s.cmd.Wait()
		}
	}()
	// The agents watch processes of a name none has: they scan every
	// process as an agent of the whole host does, but a process of
	// another program that spikes on the host (a shared machine's) is
	// not diagnosed, which would bill the idle cost for a diagnosis.
	noTarget := []string{"--name", "^agentidle-matches-nothing$"}
	// The agent's scans both ways: from one BPF program run per scan
	// (the default where it loads), and from /proc.
	agent := &subject{name: "cpuwhy agent --scan-with bpf"}
	agent.cmd = exec.Command(bin, append([]string{"agent", "--listen", "127.0.0.1:0", "--dir", filepath.Join(tmp, "reports"), "--scan-with", "bpf"}, noTarget...)...)
	if err := startSubject(agent, regexp.MustCompile(`serving http://(\S+)/metrics`)); err != nil {
		return err
	}
	subjects = append(subjects, agent)
	procAgent := &subject{name: "cpuwhy agent --scan-with proc"}
	procAgent.cmd = exec.Command(bin, append([]string{"agent", "--listen", "127.0.0.1:0", "--dir", filepath.Join(tmp, "reports-proc"), "--scan-with", "proc"}, noTarget...)...)
	if err := startSubject(procAgent, regexp.MustCompile(`serving http://(\S+)/metrics`)); err != nil {
		return err
	}
	subjects = append(subjects, procAgent)
	// The same agent on a host whose whole CPU stays under its threshold
	// (above what all the cores can give): every scan is skipped after
	// one read of /proc/stat. What an idle host costs it, on a machine
	// whose other load keeps the default threshold within reach.
	quiet := &subject{name: fmt.Sprintf("cpuwhy agent --cpu %d (host under it)", 100*(runtime.NumCPU()+1))}
	quiet.cmd = exec.Command(bin, append([]string{"agent", "--listen", "127.0.0.1:0", "--dir", filepath.Join(tmp, "reports-quiet"), "--cpu", strconv.Itoa(100 * (runtime.NumCPU() + 1))}, noTarget...)...)
	if err := startSubject(quiet, regexp.MustCompile(`serving http://(\S+)/metrics`)); err != nil {
		return err
	}
	subjects = append(subjects, quiet)
	if path, err := exec.LookPath("prometheus-node-exporter"); err == nil {
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		s := &subject{name: "node_exporter (processes collector)", scrape: "http://" + addr + "/metrics"}
		s.cmd = exec.Command(path, "--web.listen-address="+addr, "--collector.disable-defaults", "--collector.processes")
		if err := startSubject(s, nil); err != nil {
			return err
		}
		subjects = append(subjects, s)
	} else {
		fmt.Fprintln(stderr, "prometheus-node-exporter is not installed: not compared")
	}
	if path, err := exec.LookPath("prometheus-process-exporter"); err == nil {
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		cfg := filepath.Join(tmp, "process-exporter.yml")
		// Every process, grouped by its name: the per-process view
		// closest to what the agent watches.
		if err := os.WriteFile(cfg, []byte("process_names:\n  - name: \"{{.Comm}}\"\n    cmdline:\n      - '.+'\n"), 0o644); err != nil {
			return err
		}
		s := &subject{name: "process-exporter (every process)", scrape: "http://" + addr + "/metrics"}
		s.cmd = exec.Command(path, "-web.listen-address="+addr, "-config.path="+cfg, "-threads=true")
		if err := startSubject(s, nil); err != nil {
			return err
		}
		subjects = append(subjects, s)
	} else {
		fmt.Fprintln(stderr, "prometheus-process-exporter is not installed: not compared")
	}
	// Let each settle (its first scan of /proc is its most expensive),
	// then measure.
	time.Sleep(3 * time.Second)
	for _, s := range subjects {
		scrapeOnce(s)
		if s.cpu0, err = processCPU(s.cmd.Process.Pid); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	fmt.Fprintf(stderr, "measuring for %v on %d processes, %d threads\n", *window, p1, t1)
	began := time.Now()
	tick := time.NewTicker(*scrape)
	end := time.After(*window)
wait:
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			for _, s := range subjects {
				scrapeOnce(s)
			}
		case <-end:
			break wait
		}
	}
	tick.Stop()
	elapsed := time.Since(began)
	p2, t2, _ := countHost()
	fmt.Fprintf(stdout, "host: %d processes, %d threads at the start, %d and %d at the end; window %.0f s, each scraped every %v\n\n",
		p1, t1, p2, t2, elapsed.Seconds(), *scrape)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "program\tCPU (% of a core)\tRSS at the end (MiB)\tpeak RSS (MiB)\t")
	for _, s := range subjects {
		cpu, err := processCPU(s.cmd.Process.Pid)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		rss, hwm := status(s.cmd.Process.Pid, "VmRSS:"), status(s.cmd.Process.Pid, "VmHWM:")
		fmt.Fprintf(tw, "%s\t%.2f\t%.1f\t%.1f\t\n", s.name, 100*(cpu-s.cpu0).Seconds()/elapsed.Seconds(), float64(rss)/1024, float64(hwm)/1024)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// Whether the agents scanned /proc every second or skipped scans
	// because the whole host was under the threshold.
	for _, s := range []*subject{agent, procAgent, quiet} {
		resp, err := http.Get(s.scrape)
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "cpuwhy_scans_") || strings.HasPrefix(l, "cpuwhy_diagnoses_total") {
				fmt.Fprintf(stdout, "%s: %s\n", s.name, l)
			}
		}
	}
	return nil
}

// startSubject starts s; with addr, it reads where s listens from its
// stderr.
func startSubject(s *subject, addr *regexp.Regexp) error {
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if addr == nil {
		s.cmd.Stdout, s.cmd.Stderr = &s.log, &s.log
		if err := s.cmd.Start(); err != nil {
			return fmt.Errorf("starting %s: %w", s.name, err)
		}
		return waitHTTP(s)
	}
	errPipe, err := s.cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", s.name, err)
	}
	sc := bufio.NewScanner(errPipe)
	for sc.Scan() {
		if m := addr.FindStringSubmatch(sc.Text()); m != nil {
			s.scrape = "http://" + m[1] + "/metrics"
			go io.Copy(io.Discard, errPipe)
			return waitHTTP(s)
		}
	}
	return fmt.Errorf("%s did not say where it listens", s.name)
}

func waitHTTP(s *subject) error {
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get(s.scrape); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
	}
	return fmt.Errorf("%s does not answer on %s; its output:\n%s", s.name, s.scrape, s.log.String())
}

func scrapeOnce(s *subject) {
	if resp, err := http.Get(s.scrape); err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startIdle starts one threads scenario process with k threads besides
// its main one, all asleep.
func startIdle(ctx context.Context, path string, k int) (*exec.Cmd, error) {
	cmd := exec.Command(path, strconv.Itoa(k))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("threads %d did not start: %q %v", k, line, errors.Join(err, ctx.Err()))
	}
	return cmd, nil
}

// countHost counts the host's processes and threads.
func countHost() (procs, threads int, err error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, 0, err
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		tasks, err := os.ReadDir("/proc/" + e.Name() + "/task")
		if err != nil {
			continue
		}
		procs++
		threads += len(tasks)
	}
	return procs, threads, nil
}

// processCPU is a process's user and system time.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// status reads a field of /proc/PID/status, in kB.
func status(pid int, field string) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	return 0
}
