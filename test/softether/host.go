package softether

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Host is a machine on the VPN's LAN, behind the client's virtual network
// adapter: the Windows PC of the report. Its frames go into the client,
// through the VPN session to the server's hub, and to SecureNAT.
type Host struct {
	IP         net.IP           // its address on the virtual LAN
	MAC        net.HardwareAddr // its Ethernet address
	GatewayMAC net.HardwareAddr // SecureNAT's virtual host, learned by ARP

	fd int // packet socket bound to the adapter, send only
}

// HostIP is the Host's address: in SecureNAT's subnet, outside the range
// its DHCP server leases (192.168.30.10-200).
var HostIP = net.IPv4(192, 168, 30, 250).To4()

// hostMAC is the Host's Ethernet address (locally administered, unicast).
var hostMAC = net.HardwareAddr{0x02, 0x00, 0x53, 0xc0, 0xff, 0x03}

// Attach puts a Host on the client's adapter and resolves the gateway
// with ARP, which proves the whole path (adapter, client, session, hub,
// SecureNAT) carries frames both ways. It fails the test if the gateway
// does not answer within 15 s. The socket closes when the test ends.
func (cl *Client) Attach(tb testing.TB) *Host {
	tb.Helper()
	h := &Host{IP: HostIP, MAC: hostMAC, fd: -1}
	var arpFD int
	err := cl.InNetwork(func() error {
		ifi, err := net.InterfaceByName(cl.Interface())
		if err != nil {
			return err
		}
		// Protocol 0: the socket receives nothing, so frames that pass
		// by never queue up in it.
		h.fd, err = packetSocket(ifi.Index, 0)
		if err != nil {
			return err
		}
		arpFD, err = packetSocket(ifi.Index, unix.ETH_P_ARP)
		return err
	})
	if h.fd >= 0 {
		tb.Cleanup(func() { unix.Close(h.fd) })
	}
	if err != nil {
		tb.Fatalf("attaching a host to %s: %v", cl.Interface(), err)
	}
	defer unix.Close(arpFD)
	h.GatewayMAC, err = h.resolve(arpFD, GatewayIP, 15*time.Second)
	if err != nil {
		tb.Fatalf("host %s on %s: %v", h.IP, cl.Interface(), err)
	}
	return h
}

// packetSocket opens a raw packet socket bound to one interface, for
// frames of protocol (an ETH_P_ value; 0 for sending only).
func packetSocket(ifindex int, protocol uint16) (int, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(protocol)))
	if err != nil {
		return -1, fmt.Errorf("packet socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(protocol), Ifindex: ifindex}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("binding a packet socket to interface %d: %w", ifindex, err)
	}
	return fd, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// resolve asks for ip's MAC address with ARP requests every 200 ms until a
// reply comes or timeout passes.
func (h *Host) resolve(arpFD int, ip net.IP, timeout time.Duration) (net.HardwareAddr, error) {
	tv := unix.NsecToTimeval((200 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(arpFD, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return nil, err
	}
	req := arpRequest(h.MAC, h.IP, ip)
	buf := make([]byte, 1514)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if _, err := unix.Write(h.fd, req); err != nil {
			return nil, fmt.Errorf("sending an ARP request: %w", err)
		}
		for {
			n, _, err := unix.Recvfrom(arpFD, buf, 0)
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				break // next request
			}
			if err != nil {
				return nil, fmt.Errorf("reading ARP replies: %w", err)
			}
			if mac, ok := parseARPReply(buf[:n], ip); ok {
				return mac, nil
			}
		}
	}
	return nil, fmt.Errorf("no ARP reply from %s in %v", ip, timeout)
}

// arpRequest builds a broadcast Ethernet frame asking who has target.
func arpRequest(mac net.HardwareAddr, ip, target net.IP) []byte {
	f := make([]byte, 14+28)
	copy(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(f[6:12], mac)
	binary.BigEndian.PutUint16(f[12:], unix.ETH_P_ARP)
	a := f[14:]
	binary.BigEndian.PutUint16(a[0:], 1) // Ethernet
	binary.BigEndian.PutUint16(a[2:], unix.ETH_P_IP)
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:], 1) // request
	copy(a[8:14], mac)
	copy(a[14:18], ip.To4())
	copy(a[24:28], target.To4())
	return f
}

// parseARPReply returns the sender's MAC if frame is an ARP reply from ip.
func parseARPReply(frame []byte, ip net.IP) (net.HardwareAddr, bool) {
	if len(frame) < 14+28 || binary.BigEndian.Uint16(frame[12:]) != unix.ETH_P_ARP {
		return nil, false
	}
	a := frame[14:]
	if binary.BigEndian.Uint16(a[6:]) != 2 || !net.IP(a[14:18]).Equal(ip) {
		return nil, false
	}
	return append(net.HardwareAddr(nil), a[8:14]...), true
}

// udpFrame builds an Ethernet frame carrying one IPv4 UDP datagram from
// the host to dst through the gateway. The UDP checksum is left out (0),
// which IPv4 allows.
func (h *Host) udpFrame(srcPort uint16, dst netip.AddrPort, payload []byte) []byte {
	f := make([]byte, 14+20+8+len(payload))
	copy(f[0:6], h.GatewayMAC)
	copy(f[6:12], h.MAC)
	binary.BigEndian.PutUint16(f[12:], unix.ETH_P_IP)
	ip := f[14:34]
	ip[0] = 0x45 // IPv4, 20-byte header
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+len(payload)))
	ip[8] = 64 // TTL
	ip[9] = unix.IPPROTO_UDP
	copy(ip[12:16], h.IP.To4())
	d := dst.Addr().As4()
	copy(ip[16:20], d[:])
	binary.BigEndian.PutUint16(ip[10:], ipChecksum(ip))
	u := f[34:]
	binary.BigEndian.PutUint16(u[0:], srcPort)
	binary.BigEndian.PutUint16(u[2:], dst.Port())
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
	copy(u[8:], payload)
	return f
}

// ipChecksum is the IPv4 header checksum of hdr (whose checksum field is
// zero).
func ipChecksum(hdr []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(hdr); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(hdr[i:]))
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// SendUDP sends one UDP datagram from the host's port srcPort to dst. A
// dst outside the virtual LAN goes to SecureNAT, which opens a UDP
// session for each new (source port, destination) pair.
func (h *Host) SendUDP(srcPort uint16, dst netip.AddrPort, payload []byte) error {
	if !dst.Addr().Is4() {
		return fmt.Errorf("destination %s is not IPv4", dst)
	}
	if _, err := unix.Write(h.fd, h.udpFrame(srcPort, dst, payload)); err != nil {
		return fmt.Errorf("sending UDP to %s: %w", dst, err)
	}
	return nil
}

// UDPLoad is the traffic Run sends.
type UDPLoad struct {
	// Sessions is the number of flows, from host ports FirstPort on, each
	// a SecureNAT UDP session with a socket of its own in the server.
	Sessions int
	// Rate is the packets a second sent once every session is open,
	// round-robin over the flows, which keeps them all alive.
	Rate int
	// Dst is where every flow goes; default 127.0.0.1:9, the server
	// namespace's own loopback, where nothing listens.
	Dst netip.AddrPort
	// FirstPort is the first flow's source port; default 20000.
	FirstPort uint16
}

func (l *UDPLoad) defaults() error {
	if l.Dst == (netip.AddrPort{}) {
		l.Dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), 9)
	}
	if l.FirstPort == 0 {
		l.FirstPort = 20000
	}
	if l.Sessions <= 0 || int(l.FirstPort)+l.Sessions > 65536 {
		return fmt.Errorf("%d sessions from port %d do not fit in the port range", l.Sessions, l.FirstPort)
	}
	if l.Rate < 0 {
		return fmt.Errorf("negative rate %d", l.Rate)
	}
	return nil
}

// openBatch and openPause pace the opening of sessions: a burst of
// thousands of frames overflows the client's and the hub's queues, which
// drop what does not fit, and a lost first packet is a session not made.
const (
	openBatch = 100
	openPause = 10 * time.Millisecond
	// tick is how often Run sends the packets due. Packets sent in one
	// burst reach SecureNAT together and wake its thread once; spread
	// out, as a PC's traffic is, each wakes it and costs a scan of every
	// session. So the tick is as short as a ticker keeps up with.
	tick = time.Millisecond
)

// Run opens the load's sessions, then sends at its rate until ctx ends,
// and returns the packets sent. It returns nil at the end of ctx and the
// first send error otherwise.
func (h *Host) Run(ctx context.Context, load UDPLoad) (int, error) {
	if err := load.defaults(); err != nil {
		return 0, err
	}
	payload := []byte("cpuwhy: one datagram of a SecureNAT session")
	sent := 0
	for i := 0; i < load.Sessions; i++ {
		if err := h.SendUDP(load.FirstPort+uint16(i), load.Dst, payload); err != nil {
			return sent, err
		}
		sent++
		if i%openBatch == openBatch-1 {
			select {
			case <-ctx.Done():
				return sent, nil
			case <-time.After(openPause):
			}
		}
	}
	if load.Rate == 0 {
		<-ctx.Done()
		return sent, nil
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	start, next := time.Now(), 0
	for {
		select {
		case <-ctx.Done():
			return sent, nil
		case now := <-t.C:
			due := int(now.Sub(start).Seconds() * float64(load.Rate))
			for ; next < due; next++ {
				port := load.FirstPort + uint16(next%load.Sessions)
				if err := h.SendUDP(port, load.Dst, payload); err != nil {
					return sent, err
				}
				sent++
			}
		}
	}
}

// Load is a UDPLoad running in the background.
type Load struct {
	cancel context.CancelFunc
	done   chan struct{}
	sent   int
	err    error
}

// Start runs load in the background until Stop or the end of the test.
func (h *Host) Start(tb testing.TB, load UDPLoad) *Load {
	tb.Helper()
	if err := load.defaults(); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Load{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		l.sent, l.err = h.Run(ctx, load)
	}()
	tb.Cleanup(func() { l.Stop() })
	return l
}

// Stop ends the load and returns the packets sent and the error that
// ended it early, if any. It may be called more than once.
func (l *Load) Stop() (int, error) {
	l.cancel()
	<-l.done
	return l.sent, l.err
}
