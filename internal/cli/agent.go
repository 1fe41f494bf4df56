package cli

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/spf13/cobra"

	"github.com/cpuwhy/cpuwhy/internal/agent"
	"github.com/cpuwhy/cpuwhy/internal/diagnose"
	"github.com/cpuwhy/cpuwhy/internal/escape"
	"github.com/cpuwhy/cpuwhy/internal/reportdir"
	"github.com/cpuwhy/cpuwhy/internal/target"
	"github.com/cpuwhy/cpuwhy/internal/watch"
)

// maxSeries bounds --max-series: each pair is up to a dozen series (one
// per pattern) in every Prometheus that scrapes the agent.
var maxSeries = intRange{min: 1, max: 10_000}

// agentOptions are `cpuwhy agent`'s: watch's, and the exporters'.
type agentOptions struct {
	watchOptions
	listen    string
	pyroscope string
	maxSeries int
}

func newAgentCmd(g *globalOptions, s Streams) *cobra.Command {
	o := &agentOptions{watchOptions: watchOptions{global: g, streams: s}}
	cmd := &cobra.Command{
		Use:   "agent [PID]",
		Short: "watch, serving Prometheus metrics and the reports over HTTP",
		Long: `agent is 'cpuwhy watch' for a fleet: the same trigger, diagnoses and
reports, and an HTTP server on --listen:

  /metrics   Prometheus metrics: cpuwhy_verdicts_total{pattern,process,container},
             cpuwhy_diagnoses_total, cpuwhy_triggers_skipped_total{reason},
             cpuwhy_errors_total{kind}, the agent's own CPU and memory (process_*)
  /healthz   200 while /proc is scanned
  /reports   the reports, newest first (JSON; HTML in a browser), each at
             /reports/NAME.json, .txt and .html

With --pyroscope URL, each diagnosis's stack profile is pushed to that
Pyroscope server's /ingest, labelled service, process, container and
pattern. Label sets are bounded: process is the process name, never a PID,
and past --max-series (process, container) pairs the rest count as "other".`,
		Example: `  sudo cpuwhy agent --listen :9779 --dir /var/lib/cpuwhy
  sudo cpuwhy agent --listen 127.0.0.1:9779 --pyroscope http://pyroscope:4040`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := pidArg(args, &o.spec); err != nil {
				return err
			}
			return runAgent(cmd.Context(), o)
		},
	}
	o.bind(cmd)
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", "localhost:9779", "address of the HTTP server (HOST:PORT; :9779 for every interface)")
	f.StringVar(&o.pyroscope, "pyroscope", "", "push each diagnosis's profile to this Pyroscope server (http://HOST:PORT)")
	intVar(f, &o.maxSeries, "max-series", "", agent.DefaultMaxSeries, maxSeries, "distinct (process, container) label pairs of cpuwhy_verdicts_total; later ones are \"other\"")
	return cmd
}

func runAgent(ctx context.Context, o *agentOptions) error {
	var py *agent.Pyroscope
	if o.pyroscope != "" {
		var err error
		if py, err = agent.NewPyroscope(o.pyroscope); err != nil {
			return usageError{err}
		}
	}
	if _, _, err := net.SplitHostPort(o.listen); err != nil {
		return usageError{fmt.Errorf("--listen %q: give HOST:PORT (:9779 for every interface)", o.listen)}
	}
	r, err := newWatchRunner(ctx, &o.watchOptions, nil)
	if err != nil {
		return err
	}
	l, err := agent.Listen(o.listen)
	if err != nil {
		r.close()
		return err
	}
	m := agent.NewMetrics(o.maxSeries, r.w.Pending)
	m.WatchScans(r.w.Scans, r.w.Listed)
	srv := &agent.Server{Metrics: m, Reports: r.dir, Stale: 3*o.interval + 10*time.Second}
	r.serverCPU = srv.CPU
	obs := &agentObserver{srv: srv, py: py, frequency: o.frequency, stderr: o.streams.Err, r: r}
	r.obs = obs
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, l) }()
	escape.Fprintf(o.streams.Err, "cpuwhy: agent serving http://%s/metrics, /healthz and /reports\n", l.Addr())
	err = r.run(ctx)
	cancel()
	if serr := <-served; serr != nil && err == nil {
		err = serr
	}
	return err
}

// agentObserver exports what the watch does.
type agentObserver struct {
	srv       *agent.Server
	py        *agent.Pyroscope
	frequency int
	stderr    interface{ Write([]byte) (int, error) }
	r         *watchRunner
}

func (a *agentObserver) Scanned(at time.Time) { a.srv.Scanned(at) }

func (a *agentObserver) Skipped(_ watch.Trigger, why watch.Skip) { a.srv.Metrics.Skipped(string(why)) }

func (a *agentObserver) Failed(_ *watch.Trigger, kind string, _ error) { a.srv.Metrics.Error(kind) }

func (a *agentObserver) Diagnosed(trig watch.Trigger, t target.Target, res *diagnose.Result, _ reportdir.Entry) {
	rep := res.Report
	a.srv.Metrics.Diagnosed(time.Duration(rep.Cpuwhy.CPU * float64(time.Second)))
	for _, v := range rep.Verdicts {
		a.srv.Metrics.Verdict(v.Pattern, t.Name, t.ContainerLabel())
	}
}

// Export pushes the diagnosis's profile to Pyroscope, when asked to.
func (a *agentObserver) Export(trig watch.Trigger, t target.Target, res *diagnose.Result) {
	rep := res.Report
	if a.py == nil || res.Profile == nil {
		return
	}
	l := agent.Labels{Service: t.Name, Process: t.Name, Container: t.ContainerLabel()}
	if len(rep.Verdicts) > 0 {
		l.Pattern = string(rep.Verdicts[0].Pattern)
	}
	until := time.Now()
	from := until.Add(-time.Duration(rep.Window * float64(time.Second)))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := a.py.Push(ctx, res.Profile, l, from, until, a.frequency); err != nil {
		a.r.fail(&trig, "pyroscope", err)
	}
}

var _ watchObserver = (*agentObserver)(nil)
