package container

import (
	"path/filepath"

	"github.com/cpuwhy/cpuwhy/internal/proc"
)

// Read caps. Genuine files are far smaller; the caps exist because engine
// state files can be written by container creators and must not make a
// diagnostic tool allocate without bound.
const (
	maxJSONFile    = 4 << 20 // config.v2.json, OCI config.json, containers.json, API replies
	maxCmdlineFile = 1 << 20 // dockerd's /proc/PID/cmdline
	maxCommFile    = 64      // /proc/PID/comm is at most 16 bytes
)

// under joins an absolute path as seen from some root onto that root. It is
// the one place engine paths meet the configured roots, so tests can point
// every lookup at a testdata tree.
func under(root, path string) string {
	return filepath.Join(root, filepath.Clean("/"+path))
}

// readCapped reads the whole of name, failing with ErrTooLarge when it is
// larger than max rather than reading a prefix: a truncated JSON or cgroup
// file would parse into something misleading.
func readCapped(name string, max int64) ([]byte, error) { return proc.ReadFileCapped(name, max) }
