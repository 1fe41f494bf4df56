package container

import (
	"errors"
	"fmt"
	"github.com/cpuwhy/cpuwhy/internal/proc"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// DefaultTimeout bounds each engine API request. `cpuwhy top` resolves new
// containers inside a refresh, so a hung engine must cost little; the disk
// fallback has the same names.
const DefaultTimeout = 250 * time.Millisecond

// NegativeTTL is how long a container whose engine did not know it is
// remembered as nameless before it is looked up again. It is short because
// the usual cause is a container that is still being created.
const NegativeTTL = 30 * time.Second

// apiBackoff is how long a Docker API that failed (other than with "no such
// container") is left alone, so a hung engine costs one timeout per
// apiBackoff rather than one per new container.
const apiBackoff = 10 * time.Second

// maxCacheEntries bounds the cache of a long `cpuwhy top` on a host with
// container churn.
const maxCacheEntries = 4096

// Options configures a Resolver. Zero values mean the defaults.
type Options struct {
	Proc           proc.FS       // the host's /proc, read through it alone
	HostRoot       string        // default "/": where /etc/docker, /run/containerd, /var/lib/... are looked up
	DockerDataRoot string        // override, used as is (not under HostRoot); else detected
	DockerSocket   string        // override, used as is (not under HostRoot); else detected
	Timeout        time.Duration // per API request, default DefaultTimeout
}

// Resolver maps host processes to containers, caching names by container.
// It is safe for concurrent use.
type Resolver struct {
	opts Options
	now  func() time.Time // replaced in tests

	mu    sync.Mutex
	cache map[string]cacheEntry // by runtime and id

	dockerMu     sync.Mutex
	docker       *dockerEndpoint // nil until first needed
	dockerSeen   time.Time       // when docker was detected
	api          *dockerAPI      // nil when there is no socket to ask
	apiSocket    string
	apiDownUntil time.Time
}

type cacheEntry struct {
	info    Info
	expires time.Time // zero: for the Resolver's life
}

// NewResolver returns a Resolver. It does no I/O until the first lookup.
func NewResolver(o Options) *Resolver {
	if o.HostRoot == "" {
		o.HostRoot = "/"
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	return &Resolver{opts: o, now: time.Now, cache: make(map[string]cacheEntry)}
}

// Lookup returns the container of host pid (nil when none), with its name
// resolved. An error means /proc/PID/cgroup could not be read or parsed; for
// a process that has exited it matches fs.ErrNotExist.
func (r *Resolver) Lookup(pid int) (*Info, error) {
	data, err := r.opts.Proc.ReadCapped(maxCgroupFile, strconv.Itoa(pid), "cgroup")
	if err != nil {
		return nil, fmt.Errorf("reading cgroup of %d: %w", pid, err)
	}
	info, err := r.LookupCgroup(data)
	if err != nil {
		return nil, fmt.Errorf("cgroup of %d: %w", pid, err)
	}
	return info, nil
}

// LookupCgroup is Lookup for already-read /proc/PID/cgroup bytes. The Info
// returned is the caller's to keep or change.
func (r *Resolver) LookupCgroup(data []byte) (*Info, error) {
	parsed, guessed, err := parseCgroup(data)
	if err != nil || parsed == nil {
		return nil, err
	}
	key := string(parsed.Runtime) + "/" + parsed.ID
	now := r.now()
	r.mu.Lock()
	e, ok := r.cache[key]
	r.mu.Unlock()
	if ok && (e.expires.IsZero() || now.Before(e.expires)) {
		info := e.info
		return &info, nil
	}

	// Resolved without the lock: engine I/O may take up to the timeout and
	// other processes' lookups should not wait behind it. Two goroutines
	// may resolve the same new container at once; both get the same answer.
	info, known := r.resolve(*parsed, guessed)
	info.ID = parsed.ID
	e = cacheEntry{info: info}
	if !known {
		e.expires = now.Add(NegativeTTL)
	}
	r.mu.Lock()
	if len(r.cache) >= maxCacheEntries {
		r.evictLocked(now)
	}
	r.cache[key] = e
	r.mu.Unlock()
	return &info, nil
}

// evictLocked drops expired entries, and everything if that is not enough:
// refilling costs one engine lookup per live container, once.
func (r *Resolver) evictLocked(now time.Time) {
	for k, e := range r.cache {
		if !e.expires.IsZero() && !now.Before(e.expires) {
			delete(r.cache, k)
		}
	}
	if len(r.cache) >= maxCacheEntries {
		clear(r.cache)
	}
}

// resolve names the container p found in a cgroup path. known reports
// whether its engine knew it; unknown answers are cached only for
// NegativeTTL.
func (r *Resolver) resolve(p Info, guessed bool) (info Info, known bool) {
	switch p.Runtime {
	case Docker:
		return r.resolveDocker(p.ID)
	case Containerd:
		ns, config, err := findContainerdBundle(r.opts.HostRoot, p.ID)
		if guessed && (err != nil || ns == "moby") {
			// A bare /kubepods/.../<id>: containerd's k8s.io bundle would
			// have settled it; otherwise ask Docker, whose own containerd
			// keeps bundles in the "moby" namespace.
			if info, known := r.resolveDocker(p.ID); known || ns == "moby" {
				return info, known
			}
		}
		if err != nil {
			return p, false
		}
		ann, err := parseOCIAnnotations(config)
		if err != nil {
			return p, false
		}
		return containerdInfo(ann), true
	case CRIO:
		info := Info{Runtime: CRIO}
		data, err := readCapped(under(r.opts.HostRoot, filepath.Join(crioRunRoot, p.ID, "userdata", "config.json")), maxJSONFile)
		if err == nil {
			if ann, err := parseOCIAnnotations(data); err == nil {
				info = crioInfo(ann)
				known = true
			}
		}
		if info.Name == "" || info.Image == "" {
			if name, image, found := storageName(r.opts.HostRoot, p.ID); found {
				info.Name = firstNonEmpty(info.Name, name)
				info.Image = firstNonEmpty(info.Image, image)
				known = true
			}
		}
		return info, known
	case Podman:
		name, image, found := storageName(r.opts.HostRoot, p.ID)
		return Info{Runtime: Podman, Name: name, Image: image}, found
	default: // systemd-nspawn and LXC: the path held the name
		return p, true
	}
}

// resolveDocker asks the engine API first, as it is authoritative and sees
// renames, then config.v2.json, which any dockerd writes for every container.
func (r *Resolver) resolveDocker(id string) (Info, bool) {
	ep, api := r.dockerEndpoint()
	if api != nil {
		info, err := api.inspect(id)
		if err == nil {
			return info, true
		}
		if !errors.Is(err, errUnknownToEngine) {
			r.dockerMu.Lock()
			r.apiDownUntil = r.now().Add(apiBackoff)
			r.dockerMu.Unlock()
		}
	}
	info, err := dockerConfigFromDisk(ep.dataDir(r.opts.DockerDataRoot), id)
	if err != nil {
		return Info{Runtime: Docker}, false
	}
	return info, true
}

// dockerEndpoint returns where Docker keeps its state and, unless it is
// backing off, a client for its API. Detection runs on first use and again
// when dockerd's process has gone (a restart may change its flags) or, when
// no dockerd was running, after NegativeTTL.
func (r *Resolver) dockerEndpoint() (dockerEndpoint, *dockerAPI) {
	r.dockerMu.Lock()
	defer r.dockerMu.Unlock()
	now := r.now()
	stale := r.docker == nil
	if !stale && r.docker.pid != 0 {
		_, err := os.Stat(r.opts.Proc.PIDPath(r.docker.pid))
		stale = err != nil
	}
	if !stale && r.docker.pid == 0 {
		stale = !now.Before(r.dockerSeen.Add(NegativeTTL))
	}
	if stale {
		ep := detectDocker(r.opts.Proc, r.opts.HostRoot)
		r.docker, r.dockerSeen = &ep, now
		if socket := ep.socketPath(r.opts.DockerSocket); socket != r.apiSocket || r.api == nil {
			r.apiSocket, r.api = socket, nil
			if socket != "" {
				r.api = newDockerAPI(socket, r.opts.Timeout)
			}
		}
	}
	if now.Before(r.apiDownUntil) {
		return *r.docker, nil
	}
	return *r.docker, r.api
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
