package containertest

import (
	"bufio"
	"bytes"
	"os"
	"slices"
	"strings"
)

// MountPointsUnder lists the mount points at or below dir in this mount
// namespace, deepest first: the order to unmount them in. Tests use it to
// clean up after engines that mount below their temporary roots.
func MountPointsUnder(dir string) ([]string, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var points []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		p := unescapeMountinfo(fields[4])
		if p == dir || strings.HasPrefix(p, dir+"/") {
			points = append(points, p)
		}
	}
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	return points, sc.Err()
}
