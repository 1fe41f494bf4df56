package diagnose

import (
	"bytes"
	"strings"
	"testing"

	"github.com/cpuwhy/cpuwhy/internal/verdict"
)

// The line under the thread table says what the JSON holds: all the
// threads, or the first maxThreads of how many.
func TestTextThreadsBeyondTable(t *testing.T) {
	for _, tt := range []struct {
		listed, seen int
		want         string
	}{
		{listed: 8, seen: 8, want: "(3 more threads, each below 1% CPU or not shown; --json lists them)"},
		{listed: maxThreads, seen: 746, want: "(741 more threads, each below 1% CPU or not shown; --json lists the 100 with the most CPU of all 746)"},
	} {
		r := &Report{Target: Target{Name: "postgres", PID: 9}, Window: 2, ThreadCount: tt.seen}
		for i := range tt.listed {
			r.Threads = append(r.Threads, ThreadReport{TID: 10 + i, Name: "w", CPU: 50})
		}
		r.Verdicts = []verdict.Verdict{{Pattern: verdict.Healthy, Summary: "s", Advice: "a"}}
		var b bytes.Buffer
		if err := WriteText(&b, r, TextOptions{}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), tt.want) {
			t.Errorf("%d of %d threads listed:\n%s\nwant %q", tt.listed, tt.seen, b.String(), tt.want)
		}
	}
}

// A verdict's header names what its CPU is the CPU of.
func TestTextVerdictSubject(t *testing.T) {
	tg := Target{Name: "postgres", PID: 9, Children: 1}
	th := verdict.ThreadRef{TID: 12, Name: "w"}
	for _, tt := range []struct {
		v    verdict.Verdict
		want string
	}{
		{verdict.Verdict{Thread: th, CPU: 13, CPUOf: verdict.CPUOfThread}, "w (TID 12), 13.0% of a core"},
		{verdict.Verdict{Thread: th, CPU: 107.9, CPUOf: verdict.CPUOfProcess, ThreadCPU: 13}, "process postgres (PID 9), 107.9% of a core with the children it waited for"},
		{verdict.Verdict{Thread: th, CPU: 80, CPUOf: verdict.CPUOfThreads}, "w (TID 12) and the threads it contends with, 80.0% of a core together"},
		{verdict.Verdict{Thread: th, CPU: 40, CPUOf: verdict.CPUOfCollector}, "the garbage collector of postgres, 40.0% of a core (busiest: w (TID 12))"},
		{verdict.Verdict{Thread: th, CPU: 60, CPUOf: verdict.CPUOfCompiler}, "the JIT compilers of postgres, 60.0% of a core (busiest: w (TID 12))"},
	} {
		if got := subject(&tt.v, tg); got != tt.want {
			t.Errorf("subject(%s) = %q, want %q", tt.v.CPUOf, got, tt.want)
		}
	}
}
