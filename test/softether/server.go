package softether

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/test/containertest"
	"github.com/cpuwhy/cpuwhy/test/privtest"
)

// Where Debian's packages put the programs. Each finds its hamcore.se2
// (strings, certificates) beside its executable; the configuration, logs
// and control files go to the fixed directories below, built in.
const (
	ServerProgram = "/usr/libexec/softether/vpnserver/vpnserver"
	ClientProgram = "/usr/libexec/softether/vpnclient/vpnclient"

	configDir = "/var/lib/softether"
	logDir    = "/var/log/softether"
	runDir    = "/run/softether"
)

// ServerConfig is what a test may change about the server.
type ServerConfig struct {
	// Name of the container; default "vpn-<test PID>-<random>".
	Name string
	// CPUs caps the container, in cores; default 1, the report's VPS.
	CPUs float64
	// NATUDPTimeout is how long a SecureNAT UDP session lives after its
	// last packet; default 60s, SoftEther's own default.
	NATUDPTimeout time.Duration
}

// Server is a running SoftEther VPN Server in its container.
type Server struct {
	// Container runs execsvc's watchdog as its PID 1.
	*containertest.Container
}

// StartServer starts the server and returns once its listener is up and
// SecureNAT has started. It skips the test (see privtest) when the
// package is not installed. Everything it starts ends with the test.
func StartServer(tb testing.TB, cfg ServerConfig) *Server {
	tb.Helper()
	requireInstalled(tb, ServerProgram, "softether-vpnserver")
	if cfg.CPUs == 0 {
		cfg.CPUs = 1
	}
	if cfg.NATUDPTimeout == 0 {
		cfg.NATUDPTimeout = 60 * time.Second
	}
	if cfg.Name == "" {
		cfg.Name = fmt.Sprintf("vpn-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	}
	conf, err := serverConfig(cfg.NATUDPTimeout)
	if err != nil {
		tb.Fatal(err)
	}
	c := containertest.Start(tb, containertest.Config{
		Program:   ServerProgram,
		Files:     map[string]string{"hamcore.se2": filepath.Join(filepath.Dir(ServerProgram), "hamcore.se2")},
		Args:      []string{"execsvc"},
		Name:      cfg.Name,
		Image:     "cpuwhy-test/softether-vpnserver:debian",
		Network:   true, // never the host's: the server reaches out by itself
		RootFiles: rootFiles(tb, configDir+"/vpn_server.config", conf),
		Dirs:      []string{logDir, runDir},
		CPUs:      cfg.CPUs,
	})
	s := &Server{Container: c}
	s.WaitLog(tb, 30*time.Second,
		fmt.Sprintf("TCP Listener (port %d) has started", Port),
		fmt.Sprintf("[HUB %q] SecureNAT has started", Hub))
	return s
}

// gconvFiles lists glibc's iconv modules, as container root files at the
// host's paths. SoftEther converts every string through iconv and
// refuses to start ("String Library Init Failed") when it cannot: with
// LANG unset, as in a Debian image, it asks for EUC-JP and UTF-16, which
// glibc loads from this directory at run time, out of sight of ldd.
func gconvFiles() (map[string]string, error) {
	caches, err := filepath.Glob("/usr/lib/*/gconv/gconv-modules.cache")
	if err != nil || len(caches) != 1 {
		return nil, fmt.Errorf("finding glibc's gconv directory: %d candidates (%v)", len(caches), err)
	}
	dir := filepath.Dir(caches[0])
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", dir, err)
	}
	files := map[string]string{}
	for _, e := range entries {
		if e.Type().IsRegular() {
			p := filepath.Join(dir, e.Name())
			files[p] = p
		}
	}
	return files, nil
}

// rootFiles is what both programs need at fixed paths: the gconv modules
// and their configuration, written to a temporary file first.
func rootFiles(tb testing.TB, config string, data []byte) map[string]string {
	tb.Helper()
	files, err := gconvFiles()
	if err != nil {
		tb.Fatal(err)
	}
	host := filepath.Join(tb.TempDir(), filepath.Base(config))
	if err := os.WriteFile(host, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	files[config] = host
	return files
}

// requireInstalled skips the test when a Debian package's program is
// missing.
func requireInstalled(tb testing.TB, program, pkg string) {
	tb.Helper()
	if _, err := os.Stat(program); err != nil {
		privtest.Require(tb, fmt.Sprintf("%s is not installed (%v): apt-get install %s", pkg, err, pkg))
	}
}

// Log returns the server log so far (all of server_log/, oldest first).
func (s *Server) Log() (string, error) {
	return readLogs(filepath.Join(s.RootDir, logDir, "server_log"))
}

// WaitLog waits until the server log holds every one of want, failing the
// test after timeout with the log's tail.
func (s *Server) WaitLog(tb testing.TB, timeout time.Duration, want ...string) {
	tb.Helper()
	waitLog(tb, s.Container, s.Log, timeout, want...)
}

// ServicePID returns the host PID of the server proper: the process
// execsvc forks, which has every thread that does the work. Its PID in
// the container is above 1 (short-lived children of the start come
// first); PID 1, the watchdog, only waits for it.
func (s *Server) ServicePID() (int, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", s.HostPID, s.HostPID))
	if err != nil {
		return 0, fmt.Errorf("reading the children of the watchdog %d: %w", s.HostPID, err)
	}
	f := strings.Fields(string(data))
	if len(f) != 1 {
		return 0, fmt.Errorf("watchdog %d has children %q, want exactly one", s.HostPID, f)
	}
	return strconv.Atoi(f[0])
}

// readLogs concatenates the *.log files of dir in name order (the names
// carry the date).
func readLogs(dir string) (string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil {
		return "", err
	}
	sort.Strings(files)
	var b strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		b.Write(data)
	}
	return b.String(), nil
}

// waitLog polls log until it holds all of want. The programs write their
// logs from a thread of their own, a little after the event.
func waitLog(tb testing.TB, c *containertest.Container, log func() (string, error), timeout time.Duration, want ...string) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		text, err := log()
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			tb.Fatalf("reading the log of %s: %v", c.Name, err)
		}
		missing := ""
		for _, w := range want {
			if !strings.Contains(text, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: no %q in its log after %v; log ends:\n%s", c.Name, missing, timeout, tail(text, 2000))
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", c.HostPID)); err != nil {
			tb.Fatalf("%s exited (%v) before logging %q; log ends:\n%s", c.Name, err, missing, tail(text, 2000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
