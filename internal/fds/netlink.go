package fds

import (
	"strconv"
)

// ParseNetlinkTable parses /proc/PID/net/netlink:
//
//	sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode
//	000000009e266827 0   0          00000000 0        0        0     2        0        4
//
// Eth is the netlink family. Malformed lines are skipped; the error is
// for a table over MaxLines.
func ParseNetlinkTable(data []byte) ([]Socket, error) {
	return parseTable(data, parseNetlinkLine)
}

func parseNetlinkLine(line []byte) (Socket, bool) {
	var buf [10][]byte
	f, _ := fields(line, buf[:])
	if len(f) < 10 {
		return Socket{}, false
	}
	family, err1 := strconv.ParseUint(string(f[1]), 10, 8)
	inode, err2 := strconv.ParseUint(string(f[9]), 10, 64)
	if err1 != nil || err2 != nil {
		return Socket{}, false
	}
	return Socket{Proto: "netlink", Inode: inode, Protocol: int(family)}, true
}

// ParsePacketTable parses /proc/PID/net/packet:
//
//	sk               RefCnt Type Proto  Iface R Rmem   User   Inode
//	00000000a03542cd 3      3    0003   0     1 0      0      872254
//
// Proto is the ethertype in hex. Malformed lines are skipped; the error
// is for a table over MaxLines.
func ParsePacketTable(data []byte) ([]Socket, error) {
	return parseTable(data, parsePacketLine)
}

func parsePacketLine(line []byte) (Socket, bool) {
	var buf [9][]byte
	f, _ := fields(line, buf[:])
	if len(f) < 9 {
		return Socket{}, false
	}
	proto, err1 := strconv.ParseUint(string(f[3]), 16, 16)
	inode, err2 := strconv.ParseUint(string(f[8]), 10, 64)
	if err1 != nil || err2 != nil {
		return Socket{}, false
	}
	return Socket{Proto: "packet", Inode: inode, Protocol: int(proto)}, true
}

// netlinkFamilies names the netlink families (include/uapi/linux/netlink.h).
var netlinkFamilies = [...]string{
	0:  "route",
	2:  "usersock",
	3:  "firewall",
	4:  "sock_diag",
	5:  "nflog",
	6:  "xfrm",
	7:  "selinux",
	8:  "iscsi",
	9:  "audit",
	10: "fib_lookup",
	11: "connector",
	12: "netfilter",
	13: "ip6_fw",
	14: "dnrtmsg",
	15: "kobject_uevent",
	16: "generic",
	18: "scsitransport",
	19: "ecryptfs",
	20: "rdma",
	21: "crypto",
	22: "smc",
}

func netlinkFamily(n int) string {
	if n >= 0 && n < len(netlinkFamilies) && netlinkFamilies[n] != "" {
		return netlinkFamilies[n]
	}
	return "family " + strconv.Itoa(n)
}
