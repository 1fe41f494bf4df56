package softether

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/test/containertest"
)

// Client is a running SoftEther VPN Client connected to a Server.
type Client struct {
	*containertest.Container
	server *Server
}

// StartClient starts a client in a container that shares the server's
// network namespace, and returns once the server has accepted its
// session and its virtual network adapter exists.
func StartClient(tb testing.TB, s *Server) *Client {
	tb.Helper()
	requireInstalled(tb, ClientProgram, "softether-vpnclient")
	conf, err := clientConfig()
	if err != nil {
		tb.Fatal(err)
	}
	c := containertest.Start(tb, containertest.Config{
		Program:   ClientProgram,
		Files:     map[string]string{"hamcore.se2": filepath.Join(filepath.Dir(ClientProgram), "hamcore.se2")},
		Args:      []string{"execsvc"},
		Name:      s.Name + "-client",
		Image:     "cpuwhy-test/softether-vpnclient:debian",
		NetworkOf: s.Container,
		RootFiles: rootFiles(tb, configDir+"/vpn_client.config", conf),
		Dirs:      []string{logDir, runDir},
		Devices:   []string{"/dev/net/tun"},
		CPUs:      1,
	})
	cl := &Client{Container: c, server: s}
	s.WaitLog(tb, 30*time.Second,
		fmt.Sprintf("Successfully authenticated as user %q", User),
		"The new session \"SID-"+strings.ToUpper(User))
	cl.waitInterface(tb, 10*time.Second)
	return cl
}

// Interface is the kernel name of the client's virtual network adapter.
func (cl *Client) Interface() string { return "vpn_" + NIC }

// Log returns the client log so far.
func (cl *Client) Log() (string, error) {
	return readLogs(filepath.Join(cl.RootDir, logDir, "client_log"))
}

// waitInterface waits until the adapter shows in the namespace's
// /proc/net/dev, read through the client's own /proc entry.
func (cl *Client) waitInterface(tb testing.TB, timeout time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		dev, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/dev", cl.HostPID))
		if err != nil {
			tb.Fatalf("reading the interfaces of %s: %v", cl.Name, err)
		}
		if strings.Contains(string(dev), cl.Interface()+":") {
			return
		}
		if time.Now().After(deadline) {
			log, _ := cl.Log()
			tb.Fatalf("no interface %s after %v:\n%s\nclient log ends:\n%s", cl.Interface(), timeout, dev, tail(log, 2000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
