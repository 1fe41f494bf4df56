package agent

import (
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/cpuwhy/cpuwhy/internal/verdict"
)

// DefaultMaxSeries is how many (process, container) pairs the verdict
// counter labels by default.
const DefaultMaxSeries = 200

// Other is the label value of the pairs past MaxSeries.
const Other = "other"

// maxLabel bounds a container label's length.
const maxLabel = 128

// Error kinds and skip reasons the metrics are made with, so that each
// series exists (at 0) from the start and a rate() over it works.
var (
	ErrorKinds  = []string{"scan", "target_gone", "diagnose", "privilege", "write_report", "pyroscope"}
	SkipReasons = []string{"cooldown", "queue_full"}
)

// Metrics are the agent's Prometheus metrics.
type Metrics struct {
	Registry *prometheus.Registry

	verdicts  *prometheus.CounterVec
	diagnoses prometheus.Counter
	skipped   *prometheus.CounterVec
	errors    *prometheus.CounterVec
	lastScan  prometheus.Gauge
	diagCPU   prometheus.Counter

	mu        sync.Mutex
	maxSeries int
	pairs     map[[2]string]bool
}

// NewMetrics makes the metrics in a registry of their own, with the
// process collector (the agent's own CPU, memory and fds) and Go's.
// pending, when set, reports the triggers queued or being diagnosed.
func NewMetrics(maxSeries int, pending func() int) *Metrics {
	if maxSeries <= 0 {
		maxSeries = DefaultMaxSeries
	}
	m := &Metrics{
		Registry:  prometheus.NewRegistry(),
		maxSeries: maxSeries,
		pairs:     map[[2]string]bool{},
		verdicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cpuwhy_verdicts_total",
			Help: "Verdicts given by the diagnoses, by pattern, process name and container (at most --max-series process/container pairs; later ones are \"other\").",
		}, []string{"pattern", "process", "container"}),
		diagnoses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cpuwhy_diagnoses_total",
			Help: "Diagnoses run to a verdict.",
		}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cpuwhy_triggers_skipped_total",
			Help: "Triggers not diagnosed: the process was in its cooldown, or the queue was full.",
		}, []string{"reason"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cpuwhy_errors_total",
			Help: "Errors by kind: scan (of /proc), target_gone (exited before or during its diagnosis), diagnose, privilege, write_report (--dir full or read-only), pyroscope (push failed).",
		}, []string{"kind"}),
		lastScan: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cpuwhy_last_scan_timestamp_seconds",
			Help: "When /proc was last scanned, in seconds since the epoch.",
		}),
		diagCPU: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cpuwhy_diagnosis_cpu_seconds_total",
			Help: "CPU time the diagnoses used, as each report's cpuwhy.cpu_s says.",
		}),
	}
	for _, k := range ErrorKinds {
		m.errors.WithLabelValues(k)
	}
	for _, r := range SkipReasons {
		m.skipped.WithLabelValues(r)
	}
	m.Registry.MustRegister(m.verdicts, m.diagnoses, m.skipped, m.errors, m.lastScan, m.diagCPU,
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector())
	if pending != nil {
		m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cpuwhy_pending_diagnoses",
			Help: "Triggers queued or being diagnosed.",
		}, func() float64 { return float64(pending()) }))
	}
	return m
}

// WatchScans exports how many scans the watch took and skipped (the host
// was under the threshold), as scans returns them, and how many of the
// full ones a BPF program listed (the others read /proc).
func (m *Metrics) WatchScans(scans func() (full, quiet int64), listed func() int64) {
	m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "cpuwhy_scans_bpf_total",
		Help: "Full scans whose processes a BPF program listed in one run, rather than a stat file per process in /proc.",
	}, func() float64 { return float64(listed()) }))
	for _, kind := range []string{"full", "skipped"} {
		m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "cpuwhy_scans_total",
			Help:        "Scans of the processes' CPU: full (every process read, from a BPF listing or /proc), or skipped because the whole host used less CPU than the threshold.",
			ConstLabels: prometheus.Labels{"kind": kind},
		}, func() float64 {
			full, quiet := scans()
			if kind == "full" {
				return float64(full)
			}
			return float64(quiet)
		}))
	}
}

// Verdict counts one verdict on a process (its name) in a container
// (its label, "" on the host).
func (m *Metrics) Verdict(pattern verdict.Pattern, process, container string) {
	p := string(pattern)
	if !isPattern(pattern) {
		p = Other
	}
	process, container = m.pair(process, container)
	m.verdicts.WithLabelValues(p, process, container).Inc()
}

// Diagnosed counts a diagnosis that used cpu of CPU time.
func (m *Metrics) Diagnosed(cpu time.Duration) {
	m.diagnoses.Inc()
	m.diagCPU.Add(cpu.Seconds())
}

// Skipped counts a trigger not diagnosed.
func (m *Metrics) Skipped(reason string) { m.skipped.WithLabelValues(known(reason, SkipReasons)).Inc() }

// Error counts an error of a kind.
func (m *Metrics) Error(kind string) { m.errors.WithLabelValues(known(kind, ErrorKinds)).Inc() }

// Scanned notes a scan of /proc.
func (m *Metrics) Scanned(at time.Time) { m.lastScan.Set(float64(at.UnixNano()) / 1e9) }

// pair returns the labels of a (process, container) pair: themselves for
// the first maxSeries pairs, Other past them.
func (m *Metrics) pair(process, container string) (string, string) {
	process, container = label(process), label(container)
	k := [2]string{process, container}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pairs[k] {
		return process, container
	}
	if len(m.pairs) >= m.maxSeries {
		return Other, Other
	}
	m.pairs[k] = true
	return process, container
}

// label makes a label value of a name a target chose: valid UTF-8, at
// most maxLabel bytes.
func label(s string) string {
	if len(s) > maxLabel {
		s = s[:maxLabel]
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

func isPattern(p verdict.Pattern) bool {
	for _, q := range verdict.Patterns {
		if p == q {
			return true
		}
	}
	return false
}

func known(s string, set []string) string {
	for _, k := range set {
		if s == k {
			return s
		}
	}
	return Other
}
