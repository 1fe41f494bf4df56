package unwind

import (
	"os"
	"testing"
)

// libcPath returns the host's libc, whose CFI is the most varied real
// input at hand.
func libcPath(t testing.TB) string {
	for _, p := range []string{"/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6", "/lib64/libc.so.6", "/usr/lib64/libc.so.6"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("no libc.so.6 at a known path")
	return ""
}
