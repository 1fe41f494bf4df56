package agent

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/reportdir"
	"github.com/cpuwhy/cpuwhy/test/privtest"
	"github.com/cpuwhy/cpuwhy/test/spinner"
)

// Ten processes spike at once: the agent never has more than one
// diagnosis under way and --queue waiting, counts the triggers it had to
// drop, and in the end diagnoses each of the ten once.
func TestAgentBurst(t *testing.T) {
	const n, queue = 10, 2
	dir := t.TempDir()
	sn := spinner.Name()
	name := "^" + sn + "$"
	flags := watchFlags(dir)
	flags[1] = "3" // --cpu: ten spinners share two cores with whatever else runs
	// A Pyroscope that is not there: every push fails, is counted, and
	// holds nothing up.
	nowhere := "http://" + freePort(t)
	a, base := startAgent(t, append([]string{"--name", name, "--queue", fmt.Sprint(queue), "--for", "1s", "--pyroscope", nowhere}, flags...)...)
	pids := map[int]bool{}
	for range n {
		pids[spinner.Start(t, sn, 0, 0).PID] = true
	}
	maxPending := 0.0
	deadline := time.Now().Add(120 * time.Second)
	var body string
	for time.Now().Before(deadline) {
		_, body = get(t, base+"/metrics")
		p, _ := metric(body, "cpuwhy_pending_diagnoses")
		maxPending = max(maxPending, p)
		// A diagnosis is counted before its push fails.
		d, _ := metric(body, "cpuwhy_diagnoses_total")
		e, _ := metric(body, `cpuwhy_errors_total{kind="pyroscope"}`)
		if d >= n && e >= n {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if maxPending > queue+1 {
		t.Errorf("up to %.0f diagnoses pending, want at most %d (one running, %d queued)", maxPending, queue+1, queue)
	}
	if d, _ := metric(body, "cpuwhy_diagnoses_total"); d != n {
		t.Fatalf("%v diagnoses in 120 s, want %d; stderr:\n%s", d, n, a.errText())
	}
	if e, _ := metric(body, `cpuwhy_errors_total{kind="pyroscope"}`); e != n {
		t.Errorf("%v failed pushes to a Pyroscope that is not there, want %d", e, n)
	}
	if s, _ := metric(body, `cpuwhy_triggers_skipped_total{reason="queue_full"}`); s < n-1-queue {
		t.Errorf("%v triggers dropped with a full queue, want at least %d", s, n-1-queue)
	}
	entries, err := reportdir.Dir{Path: dir}.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !pids[e.PID] {
			t.Errorf("report %s of a process that is not a spinner, or twice", e.Stem)
		}
		delete(pids, e.PID)
	}
	if len(pids) != 0 {
		t.Errorf("spinners not reported: %v", pids)
	}
	a.stop()
}

// A --dir that is read-only, or full: the agent says so in one line per
// report, counts the error, still counts the verdict, and keeps running.
func TestAgentDirUnwritable(t *testing.T) {
	for _, tt := range []struct {
		name, opts string
	}{
		{"read-only", "ro,size=1m"},
		// Two pages: the text report fits, the flame graph does not.
		{"full", "size=8k"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			// mount(8) and umount(8): the test adds no raw syscalls of
			// its own.
			if out, err := exec.Command("mount", "-t", "tmpfs", "-o", tt.opts, "tmpfs", dir).CombinedOutput(); err != nil {
				privtest.Require(t, fmt.Sprintf("mounting a tmpfs (%s): %v: %s", tt.opts, err, out))
			}
			t.Cleanup(func() {
				if out, err := exec.Command("umount", "--lazy", dir).CombinedOutput(); err != nil {
					t.Errorf("unmounting %s: %v: %s", dir, err, out)
				}
			})
			sn := spinner.Name()
			name := "^" + sn + "$"
			a, base := startAgent(t, append([]string{"--name", name, "--cooldown", "0"}, watchFlags(dir)...)...)
			spinner.Start(t, sn, 0, 0)
			if !a.waitStderr("write_report", 60*time.Second) {
				t.Fatalf("no write_report error; stderr:\n%s", a.errText())
			}
			var errLine string
			for _, l := range strings.Split(a.errText(), "\n") {
				if strings.Contains(l, "write_report") {
					errLine = l
					break
				}
			}
			want := map[string]string{"read-only": "read-only file system", "full": "no space left on device"}[tt.name]
			if !strings.Contains(errLine, want) {
				t.Errorf("error line %q does not say %q", errLine, want)
			}
			// It goes on: the next trigger (no cooldown) is diagnosed too.
			deadline := time.Now().Add(60 * time.Second)
			var body string
			for time.Now().Before(deadline) {
				_, body = get(t, base+"/metrics")
				if d, _ := metric(body, "cpuwhy_diagnoses_total"); d >= 2 {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			if d, _ := metric(body, "cpuwhy_diagnoses_total"); d < 2 {
				t.Errorf("%v diagnoses, want a second one after the failed write", d)
			}
			if e, _ := metric(body, `cpuwhy_errors_total{kind="write_report"}`); e < 1 {
				t.Errorf("write_report errors %v, want counted", e)
			}
			if !strings.Contains(body, `cpuwhy_verdicts_total{container="",pattern=`) {
				t.Errorf("no verdict counted:\n%s", grep(body, "cpuwhy_verdicts"))
			}
			if code, b := get(t, base+"/healthz"); code != 200 {
				t.Errorf("/healthz %d %q", code, b)
			}
			// No half-written report is left or listed.
			names, _ := filepath.Glob(filepath.Join(dir, "*"))
			for _, n := range names {
				if strings.Contains(filepath.Base(n), ".tmp-") {
					t.Errorf("left %s", n)
				}
			}
			if code, stderr := a.stop(); code != 0 {
				t.Errorf("exit %d", code)
			} else {
				t.Logf("stderr:\n%s", stderr)
			}
		})
	}
}
