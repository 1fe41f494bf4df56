package fds

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
)

// Socket is one line of a /proc/PID/net socket table.
type Socket struct {
	Proto string // the table: tcp, tcp6, udp, udp6, raw, raw6, unix, netlink, packet
	Inode uint64

	// Internet sockets. For raw sockets the port is the IP protocol.
	Local, Remote netip.AddrPort
	State         uint8 // kernel state number; TCPState names it for TCP

	// Unix sockets.
	Path      string // bound path as the kernel prints it: "@name" for abstract, "" unnamed
	Type      uint16 // SOCK_STREAM 1, SOCK_DGRAM 2, SOCK_SEQPACKET 5
	Listening bool

	// Netlink and packet sockets: the netlink family, or the packet
	// socket's ethertype.
	Protocol int
}

// tcpStates are the kernel's TCP states (include/net/tcp_states.h).
var tcpStates = [...]string{
	1:  "ESTABLISHED",
	2:  "SYN_SENT",
	3:  "SYN_RECV",
	4:  "FIN_WAIT1",
	5:  "FIN_WAIT2",
	6:  "TIME_WAIT",
	7:  "CLOSE",
	8:  "CLOSE_WAIT",
	9:  "LAST_ACK",
	10: "LISTEN",
	11: "CLOSING",
	12: "NEW_SYN_RECV",
	13: "BOUND_INACTIVE",
}

// TCPState names a TCP state number.
func TCPState(st uint8) string {
	if int(st) < len(tcpStates) && tcpStates[st] != "" {
		return tcpStates[st]
	}
	return "STATE_" + strconv.Itoa(int(st))
}

// inetTables are the tables ParseInetTable reads: the /proc/PID/net file
// names, which are also the protocol names in descriptions.
var inetTables = map[string]bool{
	"tcp": true, "tcp6": true, "udp": true, "udp6": true,
	"udplite": true, "udplite6": true, "raw": true, "raw6": true,
	"icmp": true, "icmp6": true,
}

// ParseInetTable parses /proc/PID/net/{tcp,tcp6,udp,udp6,raw,raw6} (and
// udplite, icmp, which share the format). proto is the table's name.
// Malformed lines are skipped; the error is for an unknown proto or a
// table over MaxLines, with the sockets read before it.
func ParseInetTable(data []byte, proto string) ([]Socket, error) {
	if !inetTables[proto] {
		return nil, fmt.Errorf("unknown internet socket table %q", proto)
	}
	return parseTable(data, func(line []byte) (Socket, bool) { return parseInetLine(line, proto) })
}

// parseInetLine parses one line of an internet socket table:
//
//	sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ...
//	0: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 872237 ...
func parseInetLine(line []byte, proto string) (Socket, bool) {
	var buf [10][]byte
	f, _ := fields(line, buf[:])
	if len(f) < 10 || len(f[0]) < 2 || f[0][len(f[0])-1] != ':' {
		return Socket{}, false
	}
	local, ok1 := parseHexAddrPort(f[1])
	remote, ok2 := parseHexAddrPort(f[2])
	state, err3 := strconv.ParseUint(string(f[3]), 16, 8)
	inode, err4 := strconv.ParseUint(string(f[9]), 10, 64)
	if !ok1 || !ok2 || err3 != nil || err4 != nil || local.Addr().Is4() != remote.Addr().Is4() {
		return Socket{}, false
	}
	return Socket{Proto: proto, Inode: inode, Local: local, Remote: remote, State: uint8(state)}, true
}

// parseHexAddrPort parses the kernel's ADDR:PORT. ADDR is the address as
// 32-bit words printed with %08X in host byte order (one word for IPv4,
// four for IPv6), so the bytes in memory (network order) are each word
// in native endianness. PORT is %04X of the port in host order.
func parseHexAddrPort(b []byte) (netip.AddrPort, bool) {
	addrHex, portHex, ok := cutByte(b, ':')
	if !ok || len(portHex) != 4 || (len(addrHex) != 8 && len(addrHex) != 32) {
		return netip.AddrPort{}, false
	}
	var raw [16]byte
	n, err := hex.Decode(raw[:], addrHex)
	if err != nil {
		return netip.AddrPort{}, false
	}
	var ip [16]byte
	for w := 0; w < n; w += 4 {
		binary.NativeEndian.PutUint32(ip[w:], binary.BigEndian.Uint32(raw[w:]))
	}
	port, err := strconv.ParseUint(string(portHex), 16, 16)
	if err != nil {
		return netip.AddrPort{}, false
	}
	var addr netip.Addr
	if n == 4 {
		addr = netip.AddrFrom4([4]byte(ip[:4]))
	} else {
		addr = netip.AddrFrom16(ip)
	}
	return netip.AddrPortFrom(addr, uint16(port)), true
}

func cutByte(b []byte, sep byte) (before, after []byte, found bool) {
	for i, c := range b {
		if c == sep {
			return b[:i], b[i+1:], true
		}
	}
	return b, nil, false
}

// String describes the socket on one line, as the report shows it.
func (s Socket) String() string {
	switch s.Proto {
	case "unix":
		return s.unixString()
	case "netlink":
		return fmt.Sprintf("socket:[%d] (netlink %s)", s.Inode, netlinkFamily(s.Protocol))
	case "packet":
		return fmt.Sprintf("socket:[%d] (packet)", s.Inode)
	}
	out := s.Proto + " " + s.Local.String()
	// An unconnected socket's remote is all zeros: a listener, a bound
	// UDP socket.
	if s.Remote.Port() != 0 || !s.Remote.Addr().IsUnspecified() {
		out += " -> " + s.Remote.String()
	}
	if s.Proto == "tcp" || s.Proto == "tcp6" {
		out += " " + TCPState(s.State)
	}
	return out
}
