package container

import (
	"bytes"
	"fmt"
	"strings"
)

// maxCgroupFile caps the /proc/PID/cgroup we accept. A real one is one line
// per hierarchy (a dozen on v1) of at most a few hundred bytes; the cap
// bounds the work ParseCgroup does on anything else.
const maxCgroupFile = 64 << 10

// ParseCgroup reads the bytes of /proc/PID/cgroup and returns the container
// identity visible in its paths: runtime and id, and for systemd-nspawn and
// LXC the name encoded in the path. It returns nil, nil for a process in no
// container, including unknown paths. It does no I/O.
//
// A path of the form /kubepods/<qos>/pod<uid>/<id> does not say whether
// Docker or containerd runs the container; ParseCgroup reports Containerd,
// the common case, and Resolver checks with the engines.
func ParseCgroup(data []byte) (*Info, error) {
	info, _, err := parseCgroup(data)
	return info, err
}

// parseCgroup is ParseCgroup that also says whether the runtime was a guess.
//
// Every line is examined: on a v1/v2 hybrid the container may show only in
// some hierarchies (the unified 0:: line is often "/" there). The first line
// naming a container wins; in practice all lines that name one agree.
func parseCgroup(data []byte) (info *Info, ambiguous bool, err error) {
	if len(data) > maxCgroupFile {
		return nil, false, fmt.Errorf("cgroup file of %d bytes: %w", len(data), ErrTooLarge)
	}
	for n := 1; len(data) > 0; n++ {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte{'\n'})
		if len(line) == 0 {
			continue
		}
		// hierarchy-ID:controller-list:cgroup-path; the path may itself
		// contain ':', so only the first two separate fields.
		_, rest, ok1 := bytes.Cut(line, []byte{':'})
		_, path, ok2 := bytes.Cut(rest, []byte{':'})
		if !ok1 || !ok2 {
			return nil, false, fmt.Errorf("cgroup line %d %q: %w", n, truncate(line), ErrMalformed)
		}
		if info == nil {
			info, ambiguous = matchPath(string(path))
		}
	}
	return info, ambiguous, nil
}

// matchPath finds the outermost container in a cgroup path. Outermost,
// because that is the container the host's engines know: for Docker in
// Docker or kind, the inner ids belong to an engine inside the container.
func matchPath(path string) (*Info, bool) {
	parts := strings.Split(path, "/")
	inKubepods := false
	for i, c := range parts {
		next := ""
		if i+1 < len(parts) {
			next = parts[i+1]
		}
		if strings.HasPrefix(c, "kubepods") {
			inKubepods = true
		}
		switch {
		case c == "docker" && isID(next): // cgroupfs driver: /docker/<id>
			return &Info{Runtime: Docker, ID: next}, false
		case inKubepods && strings.HasPrefix(c, "pod") && isID(next):
			// cgroupfs driver under kubelet: /kubepods/<qos>/pod<uid>/<id>.
			// The leaf has no prefix naming the runtime.
			return &Info{Runtime: Containerd, ID: next}, true
		case c == "lxc" && next != "": // LXC before 4.0, and LXD
			return &Info{Runtime: LXC, ID: capField(next), Name: capField(next)}, false
		case c == "lxc.payload" && next != "":
			return &Info{Runtime: LXC, ID: capField(next), Name: capField(next)}, false
		case strings.HasPrefix(c, "lxc.payload.") && len(c) > len("lxc.payload."):
			name := capField(strings.TrimPrefix(c, "lxc.payload."))
			return &Info{Runtime: LXC, ID: name, Name: name}, false
		case c == "lxc.monitor" || strings.HasPrefix(c, "lxc.monitor."):
			// LXC's monitor process runs on the host on behalf of a
			// container; it is not in it, and nothing deeper is either.
			return nil, false
		case strings.HasPrefix(c, "systemd-nspawn@") && strings.HasSuffix(c, ".service"):
			name := capField(unescapeUnit(c[len("systemd-nspawn@") : len(c)-len(".service")]))
			if name != "" {
				return &Info{Runtime: Nspawn, ID: name, Name: name}, false
			}
		case i > 0 && parts[i-1] == "machine.slice" && strings.HasPrefix(c, "machine-") && strings.HasSuffix(c, ".scope"):
			name := unescapeUnit(c[len("machine-") : len(c)-len(".scope")])
			if strings.HasPrefix(name, "qemu-") {
				return nil, false // a libvirt VM: a host process, not a container
			}
			if name = capField(name); name != "" {
				return &Info{Runtime: Nspawn, ID: name, Name: name}, false
			}
		}
		if id, rt := scopeID(c); rt != None {
			return &Info{Runtime: rt, ID: id}, false
		}
	}
	return nil, false
}

// scopePrefixes are the cgroup names systemd-driven runtimes give the
// container itself: "<prefix><id>.scope", or "<prefix><id>" under the cgroupfs
// driver. Their conmon siblings (crio-conmon-<id>, libpod-conmon-<id>) fail the
// id check and so are not taken for the container, which is right: conmon is
// a host-side monitor.
var scopePrefixes = []struct {
	prefix string
	rt     Runtime
}{
	{"docker-", Docker},
	{"cri-containerd-", Containerd},
	{"nerdctl-", Containerd},
	{"crio-", CRIO},
	{"libpod-", Podman},
}

func scopeID(c string) (string, Runtime) {
	for _, p := range scopePrefixes {
		if !strings.HasPrefix(c, p.prefix) {
			continue
		}
		id := strings.TrimSuffix(c[len(p.prefix):], ".scope")
		if isID(id) {
			return id, p.rt
		}
	}
	return "", None
}

// isID reports whether s is a 64-hex-digit id as Docker, containerd, CRI-O
// and Podman generate them. Requiring the exact form is what keeps unknown
// paths such as /process_api/<32hex> from being taken for containers.
func isID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// unescapeUnit undoes systemd's unit-name escaping (\xNN), which turns the
// '-' of "my-box" into "my\x2dbox" because '-' means hierarchy in slices.
func unescapeUnit(s string) string {
	if !strings.Contains(s, `\x`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] == 'x' {
			if v, ok := unhex2(s[i+2], s[i+3]); ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func unhex2(a, b byte) (byte, bool) {
	x, ok1 := unhex(a)
	y, ok2 := unhex(b)
	return x<<4 | y, ok1 && ok2
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// truncate keeps error messages about hostile input to one short line.
func truncate(b []byte) []byte {
	if len(b) > 80 {
		return b[:80]
	}
	return b
}
