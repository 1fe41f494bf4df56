package cli

import (
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
		{[]string{"watch", "--mechanism", "strace"}, `--mechanism "strace": use ebpf, ptrace or auto`},
		{[]string{"watch", "--name", "("}, `--name "(" is not a regular expression`},
		{[]string{"watch", "--name", "a", "--container", "b"}, "give one of a PID, --container or --name"},
		{[]string{"watch", "x"}, `"x" is not a PID`},
	} {
		code, out, errOut := run(t, tt.args...)
		if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, tt.want) {
			t.Errorf("cpuwhy %v: exit %d, stdout %q, stderr %q; want 2 and one line with %q", tt.args, code, out, errOut, tt.want)
		}
	}
}
