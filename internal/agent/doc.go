// Package agent is what `cpuwhy agent` adds to `cpuwhy watch`: the
// exporters. Metrics counts what the watch and its diagnoses did, for
// Prometheus (through client_golang's registry, never hand-written
// exposition); Server serves them at /metrics beside /healthz and the
// reports (/reports); Pyroscope pushes each diagnosis's stack profile to a
// Pyroscope-compatible server. The trigger (package watch) and the
// diagnosis (package diagnose) know nothing of them: the agent is told of
// each event and exports it.
//
// The label sets are bounded, so that a host where thousands of
// short-lived processes spike cannot grow the agent's memory or a
// Prometheus server's series without end:
//   - pattern is one of verdict.Patterns, a fixed vocabulary;
//   - process is the process name (comm: at most 15 bytes), never a PID;
//   - container is the container's runtime and name ("docker:vpn"), or ""
//     on the host, cut to 128 bytes;
//   - at most Options.MaxSeries distinct (process, container) pairs are
//     labelled: the pairs seen after that are counted under
//     process="other", container="other", so cpuwhy_verdicts_total has at
//     most (MaxSeries + 1) x len(verdict.Patterns) series.
//
// Every other label (kind, reason) is a constant of this package.
package agent
