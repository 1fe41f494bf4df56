package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/cpuwhy/cpuwhy/test/privtest"
	"github.com/cpuwhy/cpuwhy/test/spinner"
)

// startAgent starts `cpuwhy agent` on a free loopback port and returns it
// with its base URL.
func startAgent(t *testing.T, args ...string) (*cpuwhy, string) {
	t.Helper()
	a := start(t, append([]string{"agent", "--listen", "127.0.0.1:0"}, args...)...)
	re := regexp.MustCompile(`serving http://(127\.0\.0\.1:\d+)/metrics`)
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(a.errText()); m != nil {
			return a, "http://" + m[1]
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the agent did not say where it listens:\n%s", a.errText())
	return nil, ""
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metric returns the value of the series whose line starts with prefix.
func metric(body, prefix string) (float64, bool) {
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, prefix) {
			f, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
			return f, err == nil
		}
	}
	return 0, false
}

// pyroscope is a Pyroscope /ingest receiver that decodes each push.
type pyroscope struct {
	*httptest.Server
	mu     sync.Mutex
	pushes []push
}

type push struct {
	query url.Values
	prof  *profile.Profile
	err   error
}

func newPyroscope(t *testing.T) *pyroscope {
	p := &pyroscope{}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var pu push
		pu.query = r.URL.Query()
		if r.URL.Path != "/ingest" || r.Method != http.MethodPost {
			pu.err = fmt.Errorf("%s %s, want POST /ingest", r.Method, r.URL.Path)
		} else if f, _, err := r.FormFile("profile"); err != nil {
			pu.err = fmt.Errorf("no profile part: %w", err)
		} else {
			pu.prof, pu.err = profile.Parse(f)
			f.Close()
		}
		p.mu.Lock()
		p.pushes = append(p.pushes, pu)
		p.mu.Unlock()
		if pu.err != nil {
			http.Error(w, pu.err.Error(), http.StatusBadRequest)
		}
	}))
	t.Cleanup(p.Close)
	return p
}

// prometheusServer runs Debian's prometheus with a private config that
// scrapes target every second, on a free loopback port, its storage in a
// temporary directory.
func prometheusServer(t *testing.T, target string) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		privtest.Require(t, "prometheus is not installed (apt-get install prometheus, as .ci/run does)")
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [%q]\nscrape_configs:\n  - job_name: cpuwhy\n    static_configs:\n      - targets: [%q]\n",
		rulesFile(t), target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr, "--log.level=warn")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	logs, _ := os.Create(filepath.Join(dir, "log"))
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting prometheus: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logs.Close()
	})
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(base + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return base
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "log"))
	t.Fatalf("prometheus not ready in 30 s:\n%s", b)
	return ""
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func rulesFile(t *testing.T) string {
	p, err := filepath.Abs("../../../deploy/prometheus/cpuwhy-rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// query runs an instant PromQL query through Prometheus's HTTP API.
func query(t *testing.T, base, q string) []map[string]any {
	t.Helper()
	_, body := get(t, base+"/api/v1/query?query="+url.QueryEscape(q))
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Result []map[string]any `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil || r.Status != "success" {
		t.Fatalf("query %s: %v: %s", q, err, body)
	}
	return r.Data.Result
}

// A process idles, then spins: the agent diagnoses it, keeps the report
// and serves it, counts the verdict on /metrics, pushes the profile to
// Pyroscope; Prometheus scraping the agent sees the verdict series, and
// the example rules' alert fires.
func TestAgentCatchesSpike(t *testing.T) {
	dir := t.TempDir()
	py := newPyroscope(t)
	sn := spinner.Name()
	name := "^" + sn + "$"
	a, base := startAgent(t, append([]string{"--name", name, "--pyroscope", py.URL}, watchFlags(dir)...)...)
	prom := prometheusServer(t, strings.TrimPrefix(base, "http://"))

	if code, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	sp := spinner.Start(t, sn, 2*time.Second, 0)
	line, ok := a.nextLine(60 * time.Second)
	if !ok || !strings.Contains(line, strconv.Itoa(sp.PID)) {
		t.Fatalf("no event for the spinner %d: %q; stderr:\n%s", sp.PID, line, a.errText())
	}

	// /metrics: the verdict, the diagnosis, the agent's own CPU and memory.
	_, body := get(t, base+"/metrics")
	series := fmt.Sprintf(`cpuwhy_verdicts_total{container="",pattern=`)
	// A diagnosis may give more than one verdict (compute_loop, and
	// starved on a loaded machine): a series each.
	var patterns []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, series) && strings.Contains(l, `process="`+sn+`"`) {
			patterns = append(patterns, strings.Split(strings.TrimPrefix(l, series+`"`), `"`)[0])
		}
	}
	if len(patterns) == 0 {
		t.Fatalf("no verdict series for %s on /metrics:\n%s", sn, grep(body, "cpuwhy_"))
	}
	t.Logf("/metrics:\n%s", grep(body, "cpuwhy_"))
	for prefix, want := range map[string]float64{
		"cpuwhy_diagnoses_total":                             1,
		`cpuwhy_errors_total{kind="write_report"}`:           0,
		`cpuwhy_triggers_skipped_total{reason="queue_full"}`: 0,
	} {
		if got, ok := metric(body, prefix); !ok || got != want {
			t.Errorf("%s = %v (found %v), want %v", prefix, got, ok, want)
		}
	}
	for _, own := range []string{"process_cpu_seconds_total", "process_resident_memory_bytes", "cpuwhy_last_scan_timestamp_seconds"} {
		if v, ok := metric(body, own); !ok || v <= 0 {
			t.Errorf("%s = %v (found %v), want > 0", own, v, ok)
		}
	}

	// /reports: newest first, each served as JSON, text and HTML.
	_, body = get(t, base+"/reports")
	var reports []struct {
		Stem, JSON, Text, HTML string
		PID                    int
	}
	if err := json.Unmarshal([]byte(body), &reports); err != nil || len(reports) != 1 || reports[0].PID != sp.PID {
		t.Fatalf("/reports: %v: %s", err, body)
	}
	for path, want := range map[string]string{reports[0].JSON: `"verdicts"`, reports[0].Text: "VERDICT 1", reports[0].HTML: "<html"} {
		if code, b := get(t, base+path); code != 200 || !strings.Contains(b, want) {
			t.Errorf("GET %s: %d, no %q", path, code, want)
		}
	}
	for _, bad := range []string{"/reports/..%2f..%2fetc%2fpasswd", "/reports/" + reports[0].Stem + ".sh", "/reports/x.json"} {
		if code, _ := get(t, base+bad); code != 404 {
			t.Errorf("GET %s: %d, want 404", bad, code)
		}
	}

	// Pyroscope got the window's profile, labelled (pushed after the
	// event's line).
	var pushes []push
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		py.mu.Lock()
		pushes = py.pushes
		py.mu.Unlock()
		if len(pushes) > 0 {
			break
		}
	}
	if len(pushes) != 1 || pushes[0].err != nil {
		t.Fatalf("pushes to Pyroscope: %+v", pushes)
	}
	p := pushes[0]
	// Labelled with the first verdict's pattern, one of the series.
	prefix := fmt.Sprintf("%s{service=%s,process=%s,pattern=", sn, sn, sn)
	pushed := p.query.Get("name")
	pattern := strings.TrimSuffix(strings.TrimPrefix(pushed, prefix), "}")
	if !strings.HasPrefix(pushed, prefix) || !slices.Contains(patterns, pattern) || p.query.Get("format") != "pprof" || p.query.Get("from") == "" {
		t.Errorf("pushed with %v, want name %s<one of %v>}, format pprof", p.query, prefix, patterns)
	}
	var samples int64
	for _, s := range p.prof.Sample {
		samples += s.Value[0]
	}
	if samples == 0 || len(p.prof.Function) == 0 {
		t.Errorf("pushed profile has %d samples and %d functions", samples, len(p.prof.Function))
	}

	// Prometheus, scraping the agent, has the series.
	q := fmt.Sprintf(`cpuwhy_verdicts_total{process=%q,pattern=%q}`, sn, pattern)
	var res []map[string]any
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if res = query(t, prom, q); len(res) > 0 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(res) != 1 {
		t.Fatalf("PromQL %s: %v", q, res)
	}
	shown, _ := json.Marshal(res)
	t.Logf("GET /api/v1/query?query=%s: result %s", q, shown)
	if pattern != "healthy" {
		// The example rule fires on it: ALERTS holds the pending or
		// firing alert with the pattern and process.
		aq := fmt.Sprintf(`ALERTS{alertname="CpuwhyPathology",process=%q}`, sn)
		deadline = time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if res = query(t, prom, aq); len(res) > 0 {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		if len(res) == 0 {
			t.Errorf("PromQL %s: no alert", aq)
		}
	}
	if code, stderr := a.stop(); code != 0 {
		t.Errorf("exit %d:\n%s", code, stderr)
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// promtool validates the example rules.
func TestRulesCheck(t *testing.T) {
	bin, err := exec.LookPath("promtool")
	if err != nil {
		privtest.Require(t, "promtool is not installed (apt-get install prometheus, as .ci/run does)")
	}
	out, err := exec.Command(bin, "check", "rules", rulesFile(t)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS: 4 rules found") {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
}

// systemd-analyze verifies deploy/'s unit, with the built binary where
// the unit expects it installed.
func TestSystemdUnit(t *testing.T) {
	bin, err := exec.LookPath("systemd-analyze")
	if err != nil {
		privtest.Require(t, "systemd-analyze is not installed (Debian package systemd)")
	}
	unit, err := os.ReadFile("../../../deploy/systemd/cpuwhy-agent.service")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "cpuwhy-agent.service")
	text := strings.ReplaceAll(string(unit), "/usr/local/bin/cpuwhy", cpuwhyBinary(t))
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "verify", path).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
