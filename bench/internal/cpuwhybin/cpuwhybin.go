// Package cpuwhybin builds the cpuwhy binary a benchmark measures: the
// static one a user runs (CGO_ENABLED=0), from the module's current
// sources, so a benchmark never measures a stale or a test build.
package cpuwhybin

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
)

// Build builds ./cmd/cpuwhy into dir and returns its path; it says so on
// log, since it takes a while. Benchmarks run from the module's root.
func Build(dir string, log io.Writer) (string, error) {
	bin := filepath.Join(dir, "cpuwhy")
	fmt.Fprintln(log, "building cpuwhy")
	build := exec.Command("go", "build", "-o", bin, "./cmd/cpuwhy")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building cpuwhy: %w\n%s", err, out)
	}
	return bin, nil
}
