package container

import (
	"github.com/cpuwhy/cpuwhy/internal/proc"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// dockerHost is a fake host with one Docker container on disk and an engine
// API served on a unix socket by handler.
type dockerHost struct {
	opts     Options
	cgroup   []byte
	requests atomic.Int32
}

func newDockerHost(t *testing.T, handler http.HandlerFunc) *dockerHost {
	t.Helper()
	// Not t.TempDir: unix socket paths are limited to 108 bytes and test
	// names make those long.
	dir, err := os.MkdirTemp("", "cw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	h := &dockerHost{
		opts: Options{
			Proc:         proc.FS{Root: filepath.Join(dir, "proc")},
			HostRoot:     filepath.Join(dir, "host"),
			DockerSocket: filepath.Join(dir, "d.sock"),
			Timeout:      200 * time.Millisecond,
		},
		cgroup: []byte("0::/system.slice/docker-" + id("api") + ".scope\n"),
	}
	writeFile(t, filepath.Join(h.opts.HostRoot, "var/lib/docker/containers", id("api"), "config.v2.json"),
		`{"Name":"/from-disk","Config":{"Image":"disk:1"}}`)

	l, err := net.Listen("unix", h.opts.DockerSocket)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.requests.Add(1)
		handler(w, r)
	}))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return h
}

func inspectHandler(t *testing.T) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/containers/"+id("api")+"/json" {
			t.Errorf("unexpected request %s %s", r.Method, r.URL.Path)
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"Id":"` + id("api") + `","Name":"/from-api","State":{"Running":true},
			"Config":{"Image":"api:2","Labels":{"io.kubernetes.pod.name":"p","io.kubernetes.pod.namespace":"ns","io.kubernetes.container.name":"c"}}}`))
	}
}

func TestDockerAPI(t *testing.T) {
	h := newDockerHost(t, inspectHandler(t))
	r := NewResolver(h.opts)
	got, err := r.LookupCgroup(h.cgroup)
	if err != nil {
		t.Fatal(err)
	}
	want := Info{Runtime: Docker, ID: id("api"), Name: "c", Pod: "p", Namespace: "ns", Image: "api:2"}
	if *got != want {
		t.Fatalf("got %+v, want %+v (from the API, not the disk)", got, want)
	}
}

// A second Lookup of the same container must not reach the engine: top does
// this for every process on every refresh.
func TestDockerAPICached(t *testing.T) {
	h := newDockerHost(t, inspectHandler(t))
	r := NewResolver(h.opts)
	for i := 0; i < 3; i++ {
		if _, err := r.LookupCgroup(h.cgroup); err != nil {
			t.Fatal(err)
		}
	}
	// A different process of the same container, with a v1 hybrid file.
	if _, err := r.LookupCgroup([]byte("4:memory:/system.slice/docker-" + id("api") + ".scope\n0::/\n")); err != nil {
		t.Fatal(err)
	}
	if n := h.requests.Load(); n != 1 {
		t.Fatalf("engine got %d requests, want 1", n)
	}
}

// An engine that hangs costs one timeout, then the name comes from disk; and
// while it backs off, new containers do not wait on it again.
func TestDockerAPITimeoutFallsBackToDisk(t *testing.T) {
	release := make(chan struct{})
	h := newDockerHost(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release) // before the server's Close, which waits for handlers

	r := NewResolver(h.opts)
	start := time.Now()
	got, err := r.LookupCgroup(h.cgroup)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "from-disk" || got.Image != "disk:1" {
		t.Fatalf("got %+v, want the on-disk name", got)
	}
	// What comes after the timeout is reading one file: milliseconds at
	// any speed; the second of slack is for a loaded machine.
	if elapsed < h.opts.Timeout || elapsed > h.opts.Timeout+time.Second {
		t.Fatalf("lookup took %v with a %v timeout", elapsed, h.opts.Timeout)
	}

	other := id("other")
	writeFile(t, filepath.Join(h.opts.HostRoot, "var/lib/docker/containers", other, "config.v2.json"), `{"Name":"/other"}`)
	start = time.Now()
	got, err = r.LookupCgroup([]byte("0::/docker/" + other + "\n"))
	if err != nil || got.Name != "other" {
		t.Fatalf("second container: %+v, %v", got, err)
	}
	// A file read, not a wait on the engine: far below the timeout at
	// any speed.
	if elapsed := time.Since(start); elapsed >= h.opts.Timeout {
		t.Fatalf("second container waited %v on a backed-off engine", elapsed)
	}
	if n := h.requests.Load(); n != 1 {
		t.Fatalf("engine got %d requests while backing off, want 1", n)
	}
}

// An engine that does not know the id is not broken: the disk is consulted
// and the engine is still asked about the next container.
func TestDockerAPINotFound(t *testing.T) {
	h := newDockerHost(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, id("api")) {
			http.Error(w, `{"message":"No such container"}`, http.StatusNotFound)
			return
		}
		w.Write([]byte(`{"Name":"/second"}`))
	})
	r := NewResolver(h.opts)
	got, err := r.LookupCgroup(h.cgroup)
	if err != nil || got.Name != "from-disk" {
		t.Fatalf("got %+v, %v; want the on-disk name", got, err)
	}
	got, err = r.LookupCgroup([]byte("0::/docker/" + id("second") + "\n"))
	if err != nil || got.Name != "second" {
		t.Fatalf("got %+v, %v; want the engine asked again", got, err)
	}
}

func TestParseDockerContainer(t *testing.T) {
	tests := []struct {
		in      string
		want    Info
		wantErr bool
	}{
		{`{"Name":"/web","Config":{"Image":"nginx"}}`, Info{Runtime: Docker, Name: "web", Image: "nginx"}, false},
		{`{"Name":"/k8s_x","Config":{"Labels":{"io.kubernetes.container.name":"x","io.kubernetes.pod.name":"p"}}}`, Info{Runtime: Docker, Name: "x", Pod: "p"}, false},
		{`{"Name":"/web","Config":null}`, Info{Runtime: Docker, Name: "web"}, false},
		{`{}`, Info{Runtime: Docker}, false},
		{`{"Name":"/a\u001b[2Jb"}`, Info{Runtime: Docker, Name: "a\x1b[2Jb"}, false}, // escaped where written
		{`{"Name":5}`, Info{}, true},
		{`[`, Info{}, true},
	}
	for _, tt := range tests {
		got, err := parseDockerContainer([]byte(tt.in))
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseDockerContainer(%s) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

// Without an override the socket comes from dockerd's -H flag, read from a
// fake /proc, and is looked up under HostRoot.
func TestDockerAPIDetectedSocket(t *testing.T) {
	dir, err := os.MkdirTemp("", "cw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	opts := Options{Proc: proc.FS{Root: filepath.Join(dir, "proc")}, HostRoot: filepath.Join(dir, "host")}
	writeFile(t, filepath.Join(opts.Proc.Root, "77", "comm"), "dockerd\n")
	writeFile(t, filepath.Join(opts.Proc.Root, "77", "cmdline"), "dockerd\x00-H\x00unix:///run/e.sock\x00")
	if err := os.MkdirAll(filepath.Join(opts.HostRoot, "run"), 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(opts.HostRoot, "run", "e.sock"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(inspectHandler(t))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)

	got, err := NewResolver(opts).LookupCgroup([]byte("0::/docker/" + id("api") + "\n"))
	if err != nil || got.Name != "c" {
		t.Fatalf("got %+v, %v; want the name from the detected socket", got, err)
	}
}

func FuzzParseDockerContainer(f *testing.F) {
	for _, s := range []string{
		`{"Name":"/web","Config":{"Image":"nginx","Labels":{"io.kubernetes.pod.name":"p"}}}`,
		`{"Name":null,"Config":{"Labels":null}}`, `[]`, `{"Config":"x"}`,
	} {
		f.Add([]byte(s))
	}
	addFiles(f, "testdata/hosts/*/host/srv/docker/containers/*/config.v2.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := parseDockerContainer(data)
		if err == nil {
			checkInfoFields(t, info)
		}
	})
}

func FuzzParseDaemonConfig(f *testing.F) {
	f.Add([]byte(`{"data-root":"/srv","graph":"/g","hosts":["fd://","unix:///x"]}`))
	f.Add([]byte(`{"hosts":null}`))
	addFiles(f, "testdata/hosts/*/host/etc/docker/*.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		if c, err := parseDaemonConfig(data); err == nil {
			_ = socketFromHosts(c.Hosts)
		}
	})
}

func FuzzParseDockerdCmdline(f *testing.F) {
	f.Add([]byte("dockerd\x00-H\x00fd://\x00--data-root=/x\x00-g\x00"))
	f.Add([]byte("-\x00-\x00--\x00"))
	addFiles(f, "testdata/hosts/*/proc/*/cmdline")
	f.Fuzz(func(t *testing.T, data []byte) {
		start := time.Now()
		flags := parseDockerdCmdline(data)
		// Only a blow-up: a command line parses in microseconds.
		if time.Since(start) > time.Second {
			t.Fatalf("slow on %d bytes", len(data))
		}
		if len(flags.Hosts) > len(data) {
			t.Fatalf("%d hosts from %d bytes", len(flags.Hosts), len(data))
		}
	})
}

// addFiles seeds a fuzz corpus with testdata files matching pattern.
func addFiles(f *testing.F, pattern string) {
	f.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed files match %s: %v", pattern, err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
}

// checkInfoFields asserts what every parser promises about the strings it
// returns: capped (and otherwise as their creator wrote them).
func checkInfoFields(t *testing.T, i Info) {
	t.Helper()
	for _, s := range []string{i.Name, i.Pod, i.Namespace, i.Image} {
		if len(s) > maxField {
			t.Fatalf("field of %d bytes", len(s))
		}
	}
}
