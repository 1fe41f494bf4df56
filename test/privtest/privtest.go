// Package privtest decides what a test does when a privileged feature it
// needs (namespaces, cgroups, perf events, ptrace), or a package that CI
// installs (.ci/run: compilers, libc6-dbg, the real servers), is missing.
//
// A test tries the real operation first and calls Require only when the
// operation shows that the feature is truly unavailable. Normally that
// skips the test with the reason; when the environment variable
// CPUWHY_REQUIRE_PRIVILEGED=1 is set (as in CI, which runs as root on a
// kernel that has everything) it fails the test instead, so a regression
// cannot hide behind a skip.
package privtest

import (
	"os"
	"testing"
)

// EnvRequire is the environment variable that turns skips into failures.
const EnvRequire = "CPUWHY_REQUIRE_PRIVILEGED"

// Required reports whether privileged features are required to work.
func Required() bool { return os.Getenv(EnvRequire) == "1" }

// Require skips the test with reason, or fails it when privileged
// features are required. It does not return.
func Require(tb testing.TB, reason string) {
	tb.Helper()
	if Required() {
		tb.Fatalf("%s (and %s=1 requires it)", reason, EnvRequire)
	}
	tb.Skip(reason)
}
