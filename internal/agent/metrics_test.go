package agent

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cpuwhy/cpuwhy/internal/verdict"
)

// The verdict counter's label sets are bounded: past MaxSeries pairs of
// process and container, and for patterns not in the vocabulary, the
// label is "other"; names a target chose are made valid UTF-8 and cut.
func TestVerdictLabelsBounded(t *testing.T) {
	m := NewMetrics(3, nil)
	for i := range 100 {
		m.Verdict(verdict.BusyPoll, fmt.Sprintf("p%d", i), "")
	}
	m.Verdict(verdict.BusyPoll, "p0", "") // a pair seen before keeps its labels
	m.Verdict("made_up", "p1", "")
	m.Verdict(verdict.Healthy, "bad\xff", strings.Repeat("c", 1000))
	for _, tt := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"busy_poll", "p0", ""}, 2},
		{[]string{"busy_poll", "p1", ""}, 1},
		{[]string{"busy_poll", "p2", ""}, 1},
		{[]string{"busy_poll", Other, Other}, 97},
		{[]string{Other, "p1", ""}, 1},
		{[]string{"healthy", Other, Other}, 1},
	} {
		if got := testutil.ToFloat64(m.verdicts.WithLabelValues(tt.labels...)); got != tt.want {
			t.Errorf("verdicts%v = %v, want %v", tt.labels, got, tt.want)
		}
	}
	if n := testutil.CollectAndCount(m.verdicts); n != 6 {
		t.Errorf("%d verdict series, want 6", n)
	}
	m2 := NewMetrics(10, nil)
	m2.Verdict(verdict.Healthy, "bad\xff", strings.Repeat("c", 1000))
	if got := testutil.ToFloat64(m2.verdicts.WithLabelValues("healthy", "bad\uFFFD", strings.Repeat("c", maxLabel))); got != 1 {
		t.Errorf("a hostile name's series = %v, want 1", got)
	}
	m2.Error("made up")
	m2.Skipped("cooldown")
	if got := testutil.ToFloat64(m2.errors.WithLabelValues(Other)); got != 1 {
		t.Errorf("unknown error kind counted %v under other", got)
	}
}

func TestAppName(t *testing.T) {
	got := AppName(Labels{Service: "vpn server", Process: "vpn server", Container: "docker:vpn{x=1,y}", Pattern: "busy_poll"})
	want := "vpn_server{service=vpn_server,process=vpn_server,container=docker:vpn_x_1_y_,pattern=busy_poll}"
	if got != want {
		t.Errorf("AppName = %q, want %q", got, want)
	}
}
