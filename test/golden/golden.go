// Package golden compares a test's output with a golden file under
// testdata, and rewrites the file when the test runs with -update. It is
// imported by tests only: importing it registers the -update flag.
package golden

import (
	"bytes"
	"flag"
	"os"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// Update reports whether the tests run with -update.
func Update() bool { return *update }

// Check fails tb unless got equals the content of the file at path; with
// -update it writes got there instead.
func Check(tb testing.TB, path string, got []byte) {
	tb.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			tb.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		tb.Errorf("%s differs from the golden file (go test -update rewrites it); got:\n%s\nwant:\n%s", path, got, want)
	}
}
