package sys

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// SocketProtocol returns the protocol name the kernel gives the socket
// that path leads to ("TCP", "UDPv6", "UNIX-STREAM", "NETLINK", ...),
// through the sockfs attribute system.sockprotoname. path is meant to be
// a /proc/PID/fd/N link to a socket: getxattr follows it to the socket
// itself, which no other way of naming a socket reaches. It is one
// syscall, so a caller can learn which /proc/PID/net table holds a socket
// instead of reading them all.
func SocketProtocol(path string) (string, error) {
	var buf [64]byte
	n, err := unix.Getxattr(path, "system.sockprotoname", buf[:])
	if err != nil {
		return "", fmt.Errorf("protocol of %s: %w", path, err)
	}
	name := buf[:n]
	for i, c := range name {
		if c == 0 {
			name = name[:i]
			break
		}
	}
	return string(name), nil
}
