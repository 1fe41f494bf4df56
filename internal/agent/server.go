package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cpuwhy/cpuwhy/internal/escape"
	"github.com/cpuwhy/cpuwhy/internal/reportdir"
	"github.com/cpuwhy/cpuwhy/internal/sys"
)

// Server serves the agent's HTTP endpoints:
//
//	/metrics            the Prometheus exposition of Metrics
//	/healthz            200 while /proc was scanned lately, else 503
//	/reports            the reports, newest first: JSON, or an HTML page for a browser
//	/reports/STEM.json  one report's --json document (.txt its text, .html its flame graph)
type Server struct {
	Metrics *Metrics
	Reports reportdir.Dir
	// Stale is how long without a scan makes /healthz fail.
	Stale time.Duration

	lastScan atomic.Int64 // unix nanoseconds
	cpu      atomic.Int64 // ns: the CPU of the requests served
	srv      *http.Server
}

// Listen binds addr, so that a bad or busy address fails before the
// watch starts.
func Listen(addr string) (net.Listener, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("--listen %q: %w", addr, err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--listen %s: %w", addr, err)
	}
	return l, nil
}

// Scanned notes a scan of /proc, for /healthz and the metrics.
func (s *Server) Scanned(at time.Time) {
	s.lastScan.Store(at.UnixNano())
	s.Metrics.Scanned(at)
}

// Handler returns the server's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.Metrics.Registry, promhttp.HandlerOpts{
		// Two scrapes at once are enough: a third waits, it does not
		// make the agent work three times as hard.
		MaxRequestsInFlight: 2,
		Timeout:             10 * time.Second,
	}))
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /reports", s.list)
	mux.HandleFunc("GET /reports/{file}", s.report)
	return s.timed(mux)
}

// timed serves each request on a locked OS thread and adds the CPU the
// thread used to CPU.
func (s *Server) timed(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.cpu.Add(int64(sys.OnThread(func() { h.ServeHTTP(w, r) })))
	})
}

// CPU is the CPU the server's requests have used, each measured on its
// own thread (what the connections cost outside a request, and the
// garbage collection of what the requests allocate, are not in it): a
// diagnosis in the same process bills itself the process's CPU less it.
func (s *Server) CPU() time.Duration { return time.Duration(s.cpu.Load()) }

// Serve serves on l until ctx ends.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	s.srv = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving HTTP: %w", err)
	case <-ctx.Done():
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.srv.Shutdown(shut)
		<-errc
		return nil
	}
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	last := time.Unix(0, s.lastScan.Load())
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if s.lastScan.Load() == 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		escape.Fprintf(w, "no scan of /proc yet\n")
		return
	}
	if time.Since(last) > s.Stale {
		w.WriteHeader(http.StatusServiceUnavailable)
		escape.Fprintf(w, "no scan of /proc for %v\n", time.Since(last).Round(time.Second))
		return
	}
	escape.Fprintf(w, "ok\n")
}

// listed is a report in /reports.
type listed struct {
	Stem string    `json:"stem"`
	Time time.Time `json:"time"`
	PID  int       `json:"pid"`
	Name string    `json:"name"`
	JSON string    `json:"json"`
	Text string    `json:"text,omitempty"`
	HTML string    `json:"html,omitempty"`
}

// maxListedReports bounds a /reports answer; the directory holds at most
// --max-reports anyway.
const maxListedReports = 1000

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	entries, err := s.Reports.List()
	if err != nil {
		http.Error(w, "listing reports failed", http.StatusInternalServerError)
		return
	}
	out := make([]listed, 0, len(entries))
	for _, e := range entries[:min(len(entries), maxListedReports)] {
		l := listed{Stem: e.Stem, Time: e.Time, PID: e.PID, Name: e.Name}
		for _, k := range e.Kinds {
			url := "/reports/" + e.Stem + k
			switch k {
			case reportdir.JSON:
				l.JSON = url
			case reportdir.Text:
				l.Text = url
			case reportdir.HTML:
				l.HTML = url
			}
		}
		out = append(out, l)
	}
	if strings.Contains(r.Header.Get("Accept"), "text/html") || r.URL.Query().Get("format") == "html" {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		listPage.Execute(w, out)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	enc.Encode(out)
}

var listPage = template.Must(template.New("reports").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>cpuwhy reports</title></head><body>
<h1>cpuwhy reports</h1>
<table><tr><th>time (UTC)</th><th>PID</th><th>process</th><th>report</th></tr>
{{range .}}<tr><td>{{.Time.Format "2006-01-02 15:04:05"}}</td><td>{{.PID}}</td><td>{{.Name}}</td><td><a href="{{.JSON}}">json</a>{{if .Text}} <a href="{{.Text}}">text</a>{{end}}{{if .HTML}} <a href="{{.HTML}}">flame graph</a>{{end}}</td></tr>
{{end}}</table></body></html>
`))

var contentTypes = map[string]string{
	reportdir.JSON: "application/json",
	reportdir.Text: "text/plain; charset=utf-8",
	reportdir.HTML: "text/html; charset=utf-8",
}

func (s *Server) report(w http.ResponseWriter, r *http.Request) {
	file := r.PathValue("file")
	kind := ""
	for k := range contentTypes {
		if strings.HasSuffix(file, k) {
			kind = k
		}
	}
	f, err := s.Reports.Open(strings.TrimSuffix(file, kind), kind)
	if errors.Is(err, os.ErrNotExist) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		http.Error(w, "reading the report failed", http.StatusInternalServerError)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", contentTypes[kind])
	// The flame graph is a page of its own, scripts included; nothing
	// else of the agent's is reachable from it.
	w.Header().Set("X-Content-Type-Options", "nosniff")
	io.Copy(w, f)
}
