package container

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/cpuwhy/cpuwhy/internal/proc"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// dockerd's defaults when neither its flags nor daemon.json say otherwise.
const (
	defaultDockerDataRoot = "/var/lib/docker"
	defaultDockerSocket   = "/var/run/docker.sock"
	defaultDockerConfig   = "/etc/docker/daemon.json"
)

// dockerdFlags is what we need from dockerd's command line. Empty fields were
// not given.
type dockerdFlags struct {
	DataRoot   string   // --data-root, or the deprecated -g/--graph
	Hosts      []string // -H/--host, repeatable
	ConfigFile string   // --config-file
}

// parseDockerdCmdline parses the NUL-separated bytes of dockerd's
// /proc/PID/cmdline. It accepts the spellings dockerd's flag library does:
// "--flag value", "--flag=value", "-g value", "-gvalue", "-g=value".
func parseDockerdCmdline(data []byte) dockerdFlags {
	args := strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")
	if len(args) > 0 {
		args = args[1:] // argv[0]
	}
	var f dockerdFlags
	var graph string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		name, value, hasValue := "", "", false
		switch {
		case strings.HasPrefix(a, "--"):
			name, value, hasValue = strings.Cut(a[2:], "=")
		case strings.HasPrefix(a, "-") && len(a) >= 2:
			name = a[1:2]
			if rest := a[2:]; rest != "" {
				value, hasValue = strings.TrimPrefix(rest, "="), true
			}
		default:
			continue
		}
		var dst *string
		switch name {
		case "data-root":
			dst = &f.DataRoot
		case "g", "graph":
			dst = &graph
		case "config-file":
			dst = &f.ConfigFile
		case "H", "host":
		default:
			continue
		}
		if !hasValue && i+1 < len(args) {
			i++
			value = args[i]
		}
		if dst == nil { // -H is repeatable
			f.Hosts = append(f.Hosts, value)
			continue
		}
		*dst = value
	}
	if f.DataRoot == "" {
		f.DataRoot = graph
	}
	return f
}

// daemonConfig is the part of /etc/docker/daemon.json we use.
type daemonConfig struct {
	DataRoot string   `json:"data-root"`
	Graph    string   `json:"graph"` // deprecated spelling of data-root
	Hosts    []string `json:"hosts"`
}

// parseDaemonConfig parses the bytes of dockerd's daemon.json.
func parseDaemonConfig(data []byte) (daemonConfig, error) {
	var c daemonConfig
	if len(data) > maxJSONFile {
		return c, fmt.Errorf("daemon.json of %d bytes: %w", len(data), ErrTooLarge)
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return daemonConfig{}, fmt.Errorf("daemon.json: %w: %w", ErrMalformed, err)
	}
	if c.DataRoot == "" {
		c.DataRoot = c.Graph
	}
	return c, nil
}

// socketFromHosts picks the unix socket among dockerd's listen addresses.
// fd:// is systemd socket activation, whose docker.socket unit listens on
// the default path. It returns "" when dockerd listens on no unix socket.
func socketFromHosts(hosts []string) string {
	if len(hosts) == 0 {
		return defaultDockerSocket
	}
	for _, h := range hosts {
		switch {
		case strings.HasPrefix(h, "unix://"):
			if p := strings.TrimPrefix(h, "unix://"); p != "" {
				return p
			}
			return defaultDockerSocket
		case strings.HasPrefix(h, "fd://"):
			return defaultDockerSocket
		}
	}
	return ""
}

// dockerEndpoint is where a Docker daemon keeps its state, as that daemon
// sees it, and the root to read it through.
type dockerEndpoint struct {
	pid      int    // dockerd's pid; 0 when no dockerd was found
	fsRoot   string // /proc/<pid>/root when readable, else HostRoot
	dataRoot string // path inside fsRoot
	socket   string // path inside fsRoot; "" when dockerd has no unix socket
}

func (e dockerEndpoint) dataDir(override string) string {
	if override != "" {
		return override
	}
	return under(e.fsRoot, e.dataRoot)
}

func (e dockerEndpoint) socketPath(override string) string {
	if override != "" {
		return override
	}
	if e.socket == "" {
		return ""
	}
	return under(e.fsRoot, e.socket)
}

// findDockerd returns the pid of the lowest-numbered process in pfs whose
// comm is "dockerd", or 0. Unreadable entries are skipped: processes come
// and go while we scan.
func findDockerd(pfs proc.FS) int {
	pids, err := pfs.PIDs()
	if err != nil {
		return 0
	}
	for _, pid := range pids {
		comm, err := pfs.ReadCapped(maxCommFile, strconv.Itoa(pid), "comm")
		if err == nil && string(bytes.TrimSpace(comm)) == "dockerd" {
			return pid
		}
	}
	return 0
}

// detectDocker works out where the running dockerd keeps its state. Flags on
// its command line beat daemon.json, which beats the defaults. Failures to
// read anything fall back to the defaults: a Docker we cannot find costs
// names, not correctness.
func detectDocker(pfs proc.FS, hostRoot string) dockerEndpoint {
	e := dockerEndpoint{fsRoot: hostRoot, dataRoot: defaultDockerDataRoot, socket: defaultDockerSocket}
	e.pid = findDockerd(pfs)
	if e.pid == 0 {
		return e
	}
	pidDir := pfs.PIDPath(e.pid)
	// dockerd may run in its own mount namespace (a snap, a systemd unit
	// with PrivateTmp or ProtectSystem); its root shows its view.
	if fi, err := os.Stat(filepath.Join(pidDir, "root")); err == nil && fi.IsDir() {
		e.fsRoot = filepath.Join(pidDir, "root")
	}
	var flags dockerdFlags
	if data, err := pfs.ReadCapped(maxCmdlineFile, strconv.Itoa(e.pid), "cmdline"); err == nil {
		flags = parseDockerdCmdline(data)
	}
	configFile := flags.ConfigFile
	if configFile == "" {
		configFile = defaultDockerConfig
	}
	var cfg daemonConfig
	if data, err := readCapped(under(e.fsRoot, configFile), maxJSONFile); err == nil {
		cfg, _ = parseDaemonConfig(data) // dockerd refuses a bad one; ignore it like a missing one
	}
	switch {
	case flags.DataRoot != "":
		e.dataRoot = flags.DataRoot
	case cfg.DataRoot != "":
		e.dataRoot = cfg.DataRoot
	}
	hosts := flags.Hosts
	if len(hosts) == 0 {
		hosts = cfg.Hosts
	}
	e.socket = socketFromHosts(hosts)
	return e
}
