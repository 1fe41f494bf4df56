package privtest

import (
	"runtime"
	"testing"
)

// recorder notes how Require ended the test instead of ending it.
type recorder struct {
	testing.TB
	skipped, failed bool
}

func (r *recorder) Helper() {}
func (r *recorder) Skip(args ...any) {
	r.skipped = true
	runtime.Goexit()
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = true
	runtime.Goexit()
}

func TestRequire(t *testing.T) {
	for _, tt := range []struct {
		env                  string
		wantSkip, wantFailed bool
	}{
		{env: "", wantSkip: true},
		{env: "0", wantSkip: true},
		{env: "1", wantFailed: true},
	} {
		t.Setenv(EnvRequire, tt.env)
		r := &recorder{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			Require(r, "no such feature")
		}()
		<-done
		if r.skipped != tt.wantSkip || r.failed != tt.wantFailed {
			t.Errorf("%s=%q: skipped=%v failed=%v, want skipped=%v failed=%v",
				EnvRequire, tt.env, r.skipped, r.failed, tt.wantSkip, tt.wantFailed)
		}
	}
}
