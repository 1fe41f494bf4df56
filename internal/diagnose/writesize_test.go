package diagnose

import (
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/cpuwhy/cpuwhy/internal/verdict"
)

// yes writes 8 KiB blocks: a write storm by rate, but not of small
// writes, whether into /dev/null or a pipe; the advice fits the fd.
func TestWriteStormYes(t *testing.T) {
	path, err := exec.LookPath("yes")
	if err != nil {
		t.Skip("no yes(1) on this machine")
	}
	for _, tt := range []struct {
		name, fd, advice string
	}{{"into /dev/null", "/dev/null", "nothing reads it"}, {"into a pipe", "pipe:", "the reader at the other end"}} {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(path)
			if tt.fd == "/dev/null" {
				null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer null.Close()
				cmd.Stdout = null
			} else {
				out, err := cmd.StdoutPipe()
				if err != nil {
					t.Fatal(err)
				}
				go io.Copy(io.Discard, out) //nolint:errcheck // ends with yes
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() }) //nolint:errcheck
			r := diagnoseProcess(t, cmd, "yes")
			check(t, r, expect{pattern: verdict.WriteStorm, syscall: "write", fd: tt.fd})
			v := r.Verdicts[0]
			if strings.Contains(v.Summary, "small writes") || !strings.Contains(v.Summary, "8.0 KiB each") {
				t.Errorf("summary %q: want 8 KiB writes, not small ones", v.Summary)
			}
			if strings.Contains(v.Advice, "log level") || !strings.Contains(v.Advice, tt.advice) {
				t.Errorf("advice %q: want %q, nothing of a log level", v.Advice, tt.advice)
			}
		})
	}
}
