package fds

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/test/containertest"
	"github.com/cpuwhy/cpuwhy/test/scenario"
)

func TestMain(m *testing.M) {
	containertest.Main(m)
}

// rawFD is the fd behind a network connection or listener, without the
// dup that File makes.
func rawFD(t *testing.T, c syscall.Conn) int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var fd int
	if err := rc.Control(func(u uintptr) { fd = int(u) }); err != nil {
		t.Fatal(err)
	}
	return fd
}

func port(addr net.Addr) string {
	_, p, _ := net.SplitHostPort(addr.String())
	return p
}

// TestDescribeSelf describes fds the test makes in its own process, each
// of a known kind.
func TestDescribeSelf(t *testing.T) {
	want := map[int]string{}

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(r.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	want[int(r.Fd())] = fmt.Sprintf("pipe:[%d]", st.Ino)
	want[int(w.Fd())] = fmt.Sprintf("pipe:[%d]", st.Ino)

	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(efd)
	want[efd] = "eventfd"
	tfd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(tfd)
	want[tfd] = "timerfd"
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(epfd)
	want[epfd] = "epoll"

	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	lport, cport := port(ln.Addr()), port(client.LocalAddr())
	want[rawFD(t, ln.(*net.TCPListener))] = "tcp 127.0.0.1:" + lport + " LISTEN"
	want[rawFD(t, client.(*net.TCPConn))] = "tcp 127.0.0.1:" + cport + " -> 127.0.0.1:" + lport + " ESTABLISHED"
	want[rawFD(t, server.(*net.TCPConn))] = "tcp 127.0.0.1:" + lport + " -> 127.0.0.1:" + cport + " ESTABLISHED"

	udp, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 500})
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	want[rawFD(t, udp)] = "udp 127.0.0.1:" + port(udp.LocalAddr()) + " -> 127.0.0.1:500"

	// IPv6 may be off on a test machine; describe it when it is on.
	if ln6, err := net.Listen("tcp6", "[::1]:0"); err == nil {
		defer ln6.Close()
		want[rawFD(t, ln6.(*net.TCPListener))] = "tcp6 [::1]:" + port(ln6.Addr()) + " LISTEN"
	} else {
		t.Logf("no IPv6 listener: %v", err)
	}

	sockPath := filepath.Join(t.TempDir(), "app.sock")
	ul, err := net.Listen("unix", sockPath)
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	want[rawFD(t, ul.(*net.UnixListener))] = "unix " + sockPath
	abstract := fmt.Sprintf("@cpuwhy-fds-%d", os.Getpid())
	al, err := net.Listen("unix", abstract)
	if err != nil {
		t.Fatal(err)
	}
	defer al.Close()
	want[rawFD(t, al.(*net.UnixListener))] = "unix (abstract) " + abstract
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pair[0])
	defer unix.Close(pair[1])
	want[pair[0]] = "unix socket"

	nl, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(nl)
	if err := unix.Bind(nl, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Fstat(nl, &st); err != nil {
		t.Fatal(err)
	}
	want[nl] = fmt.Sprintf("socket:[%d] (netlink route)", st.Ino)

	// An unbound TCP socket is in no table: its protocol still shows.
	unbound, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(unbound)
	if err := syscall.Fstat(unbound, &st); err != nil {
		t.Fatal(err)
	}
	want[unbound] = fmt.Sprintf("tcp socket:[%d]", st.Ino)

	logPath := filepath.Join(t.TempDir(), "app.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	want[int(logFile.Fd())] = logPath
	gonePath := filepath.Join(t.TempDir(), "unlinked")
	goneFile, err := os.Create(gonePath)
	if err != nil {
		t.Fatal(err)
	}
	defer goneFile.Close()
	os.Remove(gonePath)
	want[int(goneFile.Fd())] = gonePath + " (deleted)"
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	want[int(devNull.Fd())] = "/dev/null"

	d := NewDescriber(proc.FS{})
	pid := os.Getpid()
	var fdList []int
	for fd, desc := range want {
		fdList = append(fdList, fd)
		got, err := d.Describe(pid, fd)
		if err != nil || got != desc {
			t.Errorf("Describe(self, %d) = %q, %v; want %q", fd, got, err, desc)
		}
	}
	all := d.DescribeAll(pid, fdList)
	for fd, desc := range want {
		if all[fd] != desc {
			t.Errorf("DescribeAll: fd %d is %q, want %q", fd, all[fd], desc)
		}
	}
}

// socketFDs returns the fds of pid whose links are sockets.
func socketFDs(t *testing.T, pid int) []int {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range entries {
		link, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil || !strings.HasPrefix(link, "socket:[") {
			continue
		}
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fd)
	}
	return out
}

// freeUDPPort returns a UDP port on 127.0.0.1 that was free a moment ago.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// TestDescribeBusypoll describes the UDP socket the busypoll scenario
// spins on, as the report would.
func TestDescribeBusypoll(t *testing.T) {
	p := scenario.Build(t, "busypoll")
	udpPort := freeUDPPort(t)
	cmd := p.Start(t, nil, strconv.Itoa(udpPort))
	pid := cmd.Process.Pid
	socks := socketFDs(t, pid)
	if len(socks) != 1 {
		t.Fatalf("busypoll has socket fds %v, want one", socks)
	}
	d := NewDescriber(proc.FS{})
	want := fmt.Sprintf("udp 127.0.0.1:%d", udpPort)
	got, err := d.Describe(pid, socks[0])
	if err != nil || got != want {
		t.Errorf("Describe(busypoll, %d) = %q, %v; want %q", socks[0], got, err, want)
	}
	if all := d.DescribeAll(pid, []int{0, socks[0]}); all[socks[0]] != want || all[0] == "" {
		t.Errorf("DescribeAll(busypoll) = %v", all)
	}

	// The socket's protocol name, read through another process's fd
	// link, leads straight to its table.
	var opened []string
	d.open = func(path string) (*os.File, error) {
		opened = append(opened, filepath.Base(path))
		return os.Open(path)
	}
	if got, _ := d.Describe(pid, socks[0]); got != want || !slices.Equal(opened, []string{"udp"}) {
		t.Errorf("Describe = %q reading tables %q; want %q from udp alone", got, opened, want)
	}
}

// TestDescribeContainer describes the socket of busypoll in a container
// with its own network namespace: port 1701 on its loopback, which the
// host's tables do not list.
func TestDescribeContainer(t *testing.T) {
	p := scenario.Build(t, "busypoll")
	c := containertest.Start(t, containertest.Config{
		Program: p.Path,
		Files:   p.Files,
		Args:    []string{"1701"},
		Network: true,
	})
	c.WaitReady(t, 10*time.Second)
	socks := socketFDs(t, c.HostPID)
	if len(socks) != 1 {
		t.Fatalf("container has socket fds %v, want one", socks)
	}
	link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", c.HostPID, socks[0]))
	if err != nil {
		t.Fatal(err)
	}
	inode := ParseFDLink(link).Inode
	hostUDP, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		t.Fatal(err)
	}
	hostSocks, err := ParseInetTable(hostUDP, "udp")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range hostSocks {
		if s.Inode == inode {
			t.Fatalf("the host's /proc/net/udp lists the container's socket %d: the container shares its network namespace", inode)
		}
	}

	d := NewDescriber(proc.FS{})
	got, err := d.Describe(c.HostPID, socks[0])
	if want := "udp 127.0.0.1:1701"; err != nil || got != want {
		t.Errorf("Describe(container, %d) = %q, %v; want %q", socks[0], got, err, want)
	}

	c.Stop()
	if _, err := d.Describe(c.HostPID, socks[0]); !errors.Is(err, proc.ErrGone) {
		t.Errorf("Describe after the container stopped: %v, want ErrGone", err)
	}
}

// TestDescribeGone checks ErrGone for a process that exited and for an fd
// that was closed.
func TestDescribeGone(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	d := NewDescriber(proc.FS{})
	if _, err := d.Describe(cmd.Process.Pid, 0); !errors.Is(err, proc.ErrGone) {
		t.Errorf("Describe(exited pid %d) error = %v, want ErrGone", cmd.Process.Pid, err)
	}
	if got := d.DescribeAll(cmd.Process.Pid, []int{0, 1, 2}); len(got) != 0 {
		t.Errorf("DescribeAll(exited pid) = %v, want nothing", got)
	}

	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	fd := int(f.Fd())
	f.Close()
	if desc, err := d.Describe(os.Getpid(), fd); !errors.Is(err, proc.ErrGone) {
		t.Errorf("Describe(self, closed fd %d) = %q, %v; want ErrGone", fd, desc, err)
	}
}
