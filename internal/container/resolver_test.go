package container

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"github.com/cpuwhy/cpuwhy/internal/proc"
	"io/fs"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// id returns the container id the testdata/hosts trees use for key; they
// were generated with the same rule so the table can stay readable.
func id(key string) string {
	sum := sha256.Sum256([]byte("resolver-" + key))
	return hex.EncodeToString(sum[:])
}

// scenario returns Options rooted in testdata/hosts/name.
func scenario(name string) Options {
	dir := filepath.Join("testdata", "hosts", name)
	return Options{Proc: proc.FS{Root: filepath.Join(dir, "proc")}, HostRoot: filepath.Join(dir, "host")}
}

func TestLookup(t *testing.T) {
	tests := []struct {
		scenario string
		pid      int
		want     *Info
	}{
		// dockerd found, no own root: daemon.json under HostRoot moves the data root to /srv/docker.
		{"daemonjson", 2001, &Info{Runtime: Docker, ID: id("D1"), Name: "web", Image: "nginx:1.25"}},
		{"daemonjson", 2015, &Info{Runtime: Docker, ID: id("D1"), Name: "web", Image: "nginx:1.25"}}, // v1 hybrid
		// Bare kubepods id that Docker knows: dockershim, runtime corrected to Docker.
		{"daemonjson", 2002, &Info{Runtime: Docker, ID: id("DK"), Name: "app", Pod: "shop-7d9f", Namespace: "default", Image: "sha256:4b1e"}},
		// Bare kubepods id with a k8s.io bundle: containerd CRI.
		{"daemonjson", 2003, &Info{Runtime: Containerd, ID: id("C1"), Name: "api", Pod: "api-5c8d", Namespace: "shop", Image: "registry.example.com/shop/api:2.3.1"}},
		// Bare kubepods id nobody knows: containerd by default, no name, no error.
		{"daemonjson", 2004, &Info{Runtime: Containerd, ID: id("CX")}},
		{"daemonjson", 2005, &Info{Runtime: Containerd, ID: id("CS"), Name: "POD", Pod: "api-5c8d", Namespace: "shop"}},
		{"daemonjson", 2006, &Info{Runtime: Containerd, ID: id("N1"), Name: "redis-dev"}},
		{"daemonjson", 2007, &Info{Runtime: CRIO, ID: id("O1"), Name: "worker", Pod: "queue-0", Namespace: "jobs", Image: "quay.io/jobs/worker:7"}},
		// CRI-O container with no run config left: containers.json has the name.
		{"daemonjson", 2008, &Info{Runtime: CRIO, ID: id("O2"), Name: "k8s_sidecar_queue-0_jobs_0e4f7a3c-1b2d-4c5e-8f90-a1b2c3d4e5f6_1", Image: "quay.io/jobs/sidecar:1"}},
		{"daemonjson", 2009, &Info{Runtime: Podman, ID: id("P1"), Name: "db", Image: "docker.io/library/postgres:16"}},
		{"daemonjson", 2010, &Info{Runtime: Nspawn, ID: "build-box", Name: "build-box"}},
		{"daemonjson", 2011, nil},
		{"daemonjson", 1, nil},
		{"daemonjson", 2012, &Info{Runtime: Docker, ID: id("DX")}},
		// Bare kubepods id in containerd's "moby" namespace: Docker's, though its config is gone.
		{"daemonjson", 2013, &Info{Runtime: Docker, ID: id("DM")}},
		{"daemonjson", 2014, &Info{Runtime: LXC, ID: "web01", Name: "web01"}},
		// dockerd in its own mount namespace: files read through /proc/900/root,
		// --data-root beats the config file, not HostRoot's decoy.
		{"mountns", 3001, &Info{Runtime: Docker, ID: id("D2"), Name: "api", Image: "api:latest"}},
		// No dockerd running: default /var/lib/docker under HostRoot.
		{"nodockerd", 4001, &Info{Runtime: Docker, ID: id("D3"), Name: "cache", Image: "redis:7"}},
	}
	resolvers := map[string]*Resolver{}
	for _, tt := range tests {
		r := resolvers[tt.scenario]
		if r == nil {
			r = NewResolver(scenario(tt.scenario))
			resolvers[tt.scenario] = r
		}
		got, err := r.Lookup(tt.pid)
		if err != nil {
			t.Errorf("%s: Lookup(%d): %v", tt.scenario, tt.pid, err)
			continue
		}
		if !equalInfo(got, tt.want) {
			t.Errorf("%s: Lookup(%d) = %+v, want %+v", tt.scenario, tt.pid, got, tt.want)
		}
		// The cached answer must be the same.
		again, err := r.Lookup(tt.pid)
		if err != nil || !equalInfo(again, tt.want) {
			t.Errorf("%s: second Lookup(%d) = %+v, %v, want %+v", tt.scenario, tt.pid, again, err, tt.want)
		}
	}
}

func equalInfo(a, b *Info) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func TestLookupGoneProcess(t *testing.T) {
	r := NewResolver(scenario("daemonjson"))
	_, err := r.Lookup(99999)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Lookup of a missing pid: %v, want fs.ErrNotExist", err)
	}
}

func TestLookupCgroupMalformed(t *testing.T) {
	r := NewResolver(scenario("daemonjson"))
	if _, err := r.LookupCgroup([]byte("garbage\n")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("LookupCgroup(garbage): %v, want ErrMalformed", err)
	}
}

// The caller owns what Lookup returns: changing it must not change the cache.
func TestLookupReturnsCopy(t *testing.T) {
	r := NewResolver(scenario("daemonjson"))
	a, err := r.Lookup(2001)
	if err != nil {
		t.Fatal(err)
	}
	a.Name = "changed"
	b, err := r.Lookup(2001)
	if err != nil {
		t.Fatal(err)
	}
	if b.Name != "web" {
		t.Fatalf("cache changed through a returned Info: %q", b.Name)
	}
}

// A container no engine knew is looked up again after NegativeTTL, so one
// that was still being created gets its name.
func TestNegativeCacheExpires(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Proc: proc.FS{Root: filepath.Join(dir, "proc")}, HostRoot: filepath.Join(dir, "host"), DockerSocket: filepath.Join(dir, "none.sock")}
	r := NewResolver(opts)
	now := time.Unix(1700000000, 0)
	r.now = func() time.Time { return now }
	cgroup := []byte("0::/docker/" + id("late") + "\n")

	got, err := r.LookupCgroup(cgroup)
	if err != nil || got.Name != "" {
		t.Fatalf("before the config exists: %+v, %v", got, err)
	}
	writeFile(t, filepath.Join(opts.HostRoot, "var/lib/docker/containers", id("late"), "config.v2.json"), `{"Name":"/late"}`)

	now = now.Add(NegativeTTL / 2)
	if got, _ := r.LookupCgroup(cgroup); got.Name != "" {
		t.Fatalf("negative entry forgotten before NegativeTTL: %+v", got)
	}
	now = now.Add(NegativeTTL)
	if got, _ := r.LookupCgroup(cgroup); got.Name != "late" {
		t.Fatalf("after NegativeTTL: %+v, want name late", got)
	}
}

func TestCacheBounded(t *testing.T) {
	r := NewResolver(scenario("nodockerd"))
	for i := 0; i < maxCacheEntries+10; i++ {
		name := "c" + strconv.Itoa(i)
		if _, err := r.LookupCgroup([]byte("0::/lxc.payload." + name + "\n")); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(r.cache); n > maxCacheEntries {
		t.Fatalf("cache holds %d entries, cap %d", n, maxCacheEntries)
	}
}

// The hot path of `cpuwhy top`: a process of an already-named container.
func BenchmarkLookupCgroupCached(b *testing.B) {
	r := NewResolver(scenario("daemonjson"))
	cgroup := []byte("12:hugetlb:/\n10:memory:/system.slice/docker-" + id("D1") + ".scope\n1:name=systemd:/system.slice/docker-" + id("D1") + ".scope\n0::/\n")
	if info, err := r.LookupCgroup(cgroup); err != nil || info.Name != "web" {
		b.Fatalf("%+v, %v", info, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.LookupCgroup(cgroup); err != nil {
			b.Fatal(err)
		}
	}
}
