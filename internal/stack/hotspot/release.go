package hotspot

import (
	"bytes"
	"io"
	"path"
	"strconv"

	"github.com/cpuwhy/cpuwhy/internal/sys"
)

// perfmapSince is the first JDK with the Compiler.perfmap command.
const perfmapSince = 17

// jdkMajor reads the major version of the JDK whose libjvm.so is at
// libjvm (as the process names it), from the release file at the top of
// its home (JAVA_VERSION="17.0.15"; JDK 8: "1.8.0_292"), through the
// process's root. 0 when it cannot be read: the JVM is then asked, and
// says itself whether it knows the command.
func jdkMajor(root, libjvm string) int {
	dir := path.Dir(libjvm)
	for i := 0; i < 4 && dir != "/" && dir != "."; i++ {
		dir = path.Dir(dir)
		f, err := sys.OpenInRoot(root, path.Join(dir, "release"))
		if err != nil {
			continue
		}
		data, err := io.ReadAll(io.LimitReader(f, 64<<10))
		f.Close()
		if err == nil {
			return parseRelease(data)
		}
	}
	return 0
}

// parseRelease returns the major version in a JDK's release file, 0 when
// it has none.
func parseRelease(data []byte) int {
	for _, line := range bytes.Split(data, []byte{'\n'}) {
		v, ok := bytes.CutPrefix(bytes.TrimSpace(line), []byte("JAVA_VERSION="))
		if !ok {
			continue
		}
		v = bytes.Trim(v, `"`)
		if rest, ok := bytes.CutPrefix(v, []byte("1.")); ok {
			v = rest // 1.8.0_292 is JDK 8
		}
		end := 0
		for end < len(v) && end < 4 && v[end] >= '0' && v[end] <= '9' {
			end++
		}
		n, err := strconv.Atoi(string(v[:end]))
		if err != nil {
			return 0
		}
		return n
	}
	return 0
}
