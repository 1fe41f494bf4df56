package cli

import (
	"net"
	"strings"
	"testing"
)

// Bad flags of watch and agent: one line, exit status 2, before anything
// is watched.
func TestWatchFlagErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"watch", "--cpu", "0"}, "--cpu 0: give a number from 1 to 100,000"},
		{[]string{"watch", "--cpu", "NaN"}, "--cpu NaN: give a number from 1 to 100,000"},
		{[]string{"watch", "--for", "10ms"}, "--for 10ms: give a duration from 1s to 24h"},
		{[]string{"watch", "--cooldown", "-1s"}, "--cooldown -1s: give a duration from 0s to 168h"},
		{[]string{"watch", "--max-reports", "0"}, "--max-reports 0: give a whole number from 1 to 100,000"},
		{[]string{"watch", "--queue", "1000"}, "--queue 1000: give a whole number from 1 to 100"},
		{[]string{"watch", "--scan-interval", "1ms"}, "--scan-interval 1ms: give a duration from 100ms to 1m"},
		{[]string{"watch", "--scan-with", "perf"}, `--scan-with "perf": give bpf, proc or auto`},
		{[]string{"watch", "--mechanism", "strace"}, `--mechanism "strace": use ebpf, ptrace or auto`},
		{[]string{"watch", "--name", "("}, `--name "(" is not a regular expression`},
		{[]string{"watch", "--name", "a", "--container", "b"}, "give one of a PID, --container or --name"},
		{[]string{"watch", "x"}, `"x" is not a PID`},
		{[]string{"agent", "--listen", "foo"}, `--listen "foo": give HOST:PORT`},
		{[]string{"agent", "--listen", ""}, `--listen "": give HOST:PORT`},
		{[]string{"agent", "--pyroscope", "ftp://x"}, `--pyroscope "ftp://x": give the server's URL`},
		{[]string{"agent", "--pyroscope", "pyroscope:4040"}, `--pyroscope "pyroscope:4040": give the server's URL`},
		{[]string{"agent", "--max-series", "0"}, "--max-series 0: give a whole number from 1 to 10,000"},
		{[]string{"agent", "--cpu", "-5"}, "--cpu -5: give a number from 1 to 100,000"},
	} {
		code, out, errOut := run(t, append(tt.args, "--dir", t.TempDir())...)
		if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, tt.want) {
			t.Errorf("cpuwhy %v: exit %d, stdout %q, stderr %q; want 2 and one line with %q", tt.args, code, out, errOut, tt.want)
		}
	}
}

// An address the agent cannot listen on: one line, exit status 1, and
// nothing watched.
func TestAgentListenBusy(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	code, out, errOut := run(t, "agent", "--listen", l.Addr().String(), "--dir", t.TempDir())
	if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "address already in use") {
		t.Errorf("agent on a busy address: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}
