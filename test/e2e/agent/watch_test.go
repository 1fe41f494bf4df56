package agent

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/reportdir"
	"github.com/cpuwhy/cpuwhy/test/spinner"
)

// The flags every test's watch runs with: the threshold is low because a
// spinner on a shared two-core machine may get much less than a core
// (the test is of the trigger, not of the machine's speed), the scans
// frequent and the windows short so that the test is quick.
func watchFlags(dir string) []string {
	return []string{"--cpu", "20", "--for", "2s", "--scan-interval", "250ms", "-d", "1s", "--dir", dir}
}

// A process started after the watch began idles, then spins: the watch
// diagnoses it once, keeps its report (JSON, text, HTML) and prints one
// line naming it; SIGTERM stops the watch cleanly.
func TestWatchCatchesSpike(t *testing.T) {
	dir := t.TempDir()
	sn := spinner.Name()
	name := "^" + sn + "$"
	w := start(t, append([]string{"watch", "--name", name}, watchFlags(dir)...)...)
	if !w.waitStderr("cpuwhy: watching", 10*time.Second) {
		t.Fatalf("watch did not start:\n%s", w.errText())
	}
	sp := spinner.Start(t, sn, 2*time.Second, 0)
	line, ok := w.nextLine(60 * time.Second)
	if !ok {
		t.Fatalf("no event line in 60 s; stderr:\n%s", w.errText())
	}
	if !strings.Contains(line, strconv.Itoa(sp.PID)+" ("+sn+")") || !strings.Contains(line, dir) {
		t.Errorf("event line %q does not name the spinner %d and a report in %s", line, sp.PID, dir)
	}
	entries, err := reportdir.Dir{Path: dir}.List()
	if err != nil || len(entries) != 1 {
		t.Fatalf("reports in %s: %v, %v; want one", dir, entries, err)
	}
	e := entries[0]
	if e.PID != sp.PID || len(e.Kinds) != 3 {
		t.Errorf("report %+v, want the spinner's with JSON, text and HTML", e)
	}
	r := readReport(t, dir, e)
	if r.Target.PID != sp.PID || len(r.Verdicts) == 0 || r.Cpuwhy.Mechanism != "ebpf" {
		t.Errorf("report of PID %d with verdicts %v by %q, want the spinner's, with a verdict, by ebpf", r.Target.PID, r.Verdicts, r.Cpuwhy.Mechanism)
	}
	code, stderr := w.stop()
	if code != 0 || !strings.HasSuffix(stderr, "cpuwhy: stopped\n") {
		t.Errorf("after SIGTERM: exit %d, stderr:\n%s", code, stderr)
	}
	if out := w.outText(); strings.Count(out, "\n") != 1 {
		t.Errorf("stdout has %d lines, want the one event (cooldown 10 min):\n%s", strings.Count(out, "\n"), out)
	}
}

// A process that exits during its diagnosis is diagnosed on what was seen
// until it went, the report says so, and the watch goes on to the next
// spike.
func TestWatchTargetExits(t *testing.T) {
	dir := t.TempDir()
	flags := watchFlags(dir)
	flags[len(flags)-3] = "6s" // -d: the spinner exits during the window
	sn := spinner.Name()
	name := "^" + sn + "$"
	w := start(t, append([]string{"watch", "--name", name}, flags...)...)
	w.waitStderr("cpuwhy: watching", 10*time.Second)
	// Hot for 2 s, the trigger; it exits some 3 s into the 6 s window.
	sp := spinner.Start(t, sn, 0, 5*time.Second)
	line, ok := w.nextLine(60 * time.Second)
	if !ok || !strings.Contains(line, strconv.Itoa(sp.PID)) {
		t.Fatalf("no event for the spinner %d that exited during its diagnosis: %q; stderr:\n%s", sp.PID, line, w.errText())
	}
	select {
	case <-sp.Done():
	default:
		t.Fatalf("the spinner %d was diagnosed before it exited", sp.PID)
	}
	entries, err := reportdir.Dir{Path: dir}.List()
	if err != nil || len(entries) != 1 {
		t.Fatalf("reports: %v, %v", entries, err)
	}
	r := readReport(t, dir, entries[0])
	exitNote := false
	for _, n := range r.Notes {
		exitNote = exitNote || strings.Contains(n, "the process exited during the window")
	}
	if !exitNote || r.Window >= 6 || r.Window < 1 || r.Target.CPU < 20 {
		t.Errorf("report of a process that exited: window %.1f s, CPU %.1f%%, notes %q; want a shorter window, its CPU, and a note", r.Window, r.Target.CPU, r.Notes)
	}
	// Still watching: the next spike is diagnosed.
	sp2 := spinner.Start(t, sn, 0, 0)
	line, ok = w.nextLine(60 * time.Second)
	if !ok || !strings.Contains(line, strconv.Itoa(sp2.PID)) {
		t.Fatalf("after a target exited, no event for the next spinner %d: %q; stderr:\n%s", sp2.PID, line, w.errText())
	}
	if code, stderr := w.stop(); code != 0 {
		t.Errorf("exit %d, stderr:\n%s", code, stderr)
	}
}

// --max-reports bounds the directory: the oldest reports go.
func TestWatchMaxReports(t *testing.T) {
	dir := t.TempDir()
	// Reports left by an earlier run count: two old ones, one kept.
	for _, stem := range []string{"20200101T000000.000Z-1-old", "20200101T000001.000Z-2-old"} {
		if err := os.WriteFile(dir+"/"+stem+".json", []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sp := spinner.Start(t, spinner.Name(), 0, 0)
	w := start(t, append([]string{"watch", strconv.Itoa(sp.PID), "--max-reports", "2", "--cooldown", "0"}, watchFlags(dir)...)...)
	for range 2 {
		if _, ok := w.nextLine(60 * time.Second); !ok {
			t.Fatalf("fewer than two events; stderr:\n%s", w.errText())
		}
	}
	w.stop()
	entries, err := reportdir.Dir{Path: dir}.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 || entries[0].PID != sp.PID || entries[1].PID != sp.PID {
		t.Errorf("reports %+v, want the spinner's two newest", entries)
	}
}
