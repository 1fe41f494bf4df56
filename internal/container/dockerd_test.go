package container

import (
	"github.com/cpuwhy/cpuwhy/internal/proc"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseDockerdCmdline(t *testing.T) {
	tests := []struct {
		args []string
		want dockerdFlags
	}{
		{[]string{"/usr/bin/dockerd"}, dockerdFlags{}},
		{[]string{"/usr/bin/dockerd", "-H", "fd://", "--containerd=/run/containerd/containerd.sock"}, dockerdFlags{Hosts: []string{"fd://"}}},
		{[]string{"dockerd", "--data-root", "/data/docker"}, dockerdFlags{DataRoot: "/data/docker"}},
		{[]string{"dockerd", "--data-root=/data/docker"}, dockerdFlags{DataRoot: "/data/docker"}},
		{[]string{"dockerd", "-g", "/old/graph"}, dockerdFlags{DataRoot: "/old/graph"}},
		{[]string{"dockerd", "-g/old/graph"}, dockerdFlags{DataRoot: "/old/graph"}},
		{[]string{"dockerd", "-g=/old/graph"}, dockerdFlags{DataRoot: "/old/graph"}},
		{[]string{"dockerd", "--graph", "/old/graph"}, dockerdFlags{DataRoot: "/old/graph"}},
		// --data-root wins over the deprecated spelling whatever the order.
		{[]string{"dockerd", "--data-root=/new", "-g", "/old"}, dockerdFlags{DataRoot: "/new"}},
		{[]string{"dockerd", "-H", "tcp://0.0.0.0:2375", "--host=unix:///run/d.sock", "-Hunix:///x.sock"}, dockerdFlags{Hosts: []string{"tcp://0.0.0.0:2375", "unix:///run/d.sock", "unix:///x.sock"}}},
		{[]string{"dockerd", "--config-file", "/etc/docker/alt.json"}, dockerdFlags{ConfigFile: "/etc/docker/alt.json"}},
		{[]string{"dockerd", "--config-file=/etc/docker/alt.json", "--debug"}, dockerdFlags{ConfigFile: "/etc/docker/alt.json"}},
		// A flag with its value missing at the end takes nothing.
		{[]string{"dockerd", "--data-root"}, dockerdFlags{}},
		{[]string{"dockerd", "--", "--data-root", "/x"}, dockerdFlags{}},
		{nil, dockerdFlags{}},
	}
	for _, tt := range tests {
		data := []byte(strings.Join(tt.args, "\x00") + "\x00")
		if got := parseDockerdCmdline(data); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseDockerdCmdline(%q) = %+v, want %+v", tt.args, got, tt.want)
		}
	}
}

func TestParseDaemonConfig(t *testing.T) {
	tests := []struct {
		in      string
		want    daemonConfig
		wantErr bool
	}{
		{`{}`, daemonConfig{}, false},
		{`{"data-root":"/srv/docker","hosts":["unix:///run/docker.sock"]}`, daemonConfig{DataRoot: "/srv/docker", Hosts: []string{"unix:///run/docker.sock"}}, false},
		{`{"graph":"/old"}`, daemonConfig{DataRoot: "/old", Graph: "/old"}, false},
		{`{"data-root":"/new","graph":"/old"}`, daemonConfig{DataRoot: "/new", Graph: "/old"}, false},
		{`{"data-root":`, daemonConfig{}, true},
		{`{"hosts":"unix:///not-a-list"}`, daemonConfig{}, true},
	}
	for _, tt := range tests {
		got, err := parseDaemonConfig([]byte(tt.in))
		if (err != nil) != tt.wantErr || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseDaemonConfig(%s) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestSocketFromHosts(t *testing.T) {
	tests := []struct {
		hosts []string
		want  string
	}{
		{nil, defaultDockerSocket},
		{[]string{"fd://"}, defaultDockerSocket},
		{[]string{"unix://"}, defaultDockerSocket},
		{[]string{"tcp://0.0.0.0:2376", "unix:///run/user/1000/docker.sock"}, "/run/user/1000/docker.sock"},
		{[]string{"tcp://0.0.0.0:2376"}, ""},
	}
	for _, tt := range tests {
		if got := socketFromHosts(tt.hosts); got != tt.want {
			t.Errorf("socketFromHosts(%q) = %q, want %q", tt.hosts, got, tt.want)
		}
	}
}

func TestDetectDocker(t *testing.T) {
	tests := []struct {
		scenario string
		want     dockerEndpoint
	}{
		{"daemonjson", dockerEndpoint{pid: 812, fsRoot: "testdata/hosts/daemonjson/host", dataRoot: "/srv/docker", socket: defaultDockerSocket}},
		{"mountns", dockerEndpoint{pid: 900, fsRoot: "testdata/hosts/mountns/proc/900/root", dataRoot: "/data/docker", socket: ""}},
		{"nodockerd", dockerEndpoint{fsRoot: "testdata/hosts/nodockerd/host", dataRoot: defaultDockerDataRoot, socket: defaultDockerSocket}},
	}
	for _, tt := range tests {
		o := scenario(tt.scenario)
		if got := detectDocker(o.Proc, o.HostRoot); got != tt.want {
			t.Errorf("%s: detectDocker = %+v, want %+v", tt.scenario, got, tt.want)
		}
	}
}

// Lower pids are preferred so the choice among several daemons is stable.
func TestFindDockerdLowestPid(t *testing.T) {
	root := t.TempDir()
	for _, p := range []struct{ pid, comm string }{{"30", "dockerd"}, {"9", "bash"}, {"100", "dockerd"}, {"self", "dockerd"}} {
		writeFile(t, filepath.Join(root, p.pid, "comm"), p.comm+"\n")
	}
	if got := findDockerd(proc.FS{Root: root}); got != 30 {
		t.Fatalf("findDockerd = %d, want 30", got)
	}
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
