package fds

import (
	"strconv"
)

// unixAcceptCon is __SO_ACCEPTCON in the Flags column: a listening socket.
const unixAcceptCon = 1 << 16

// ParseUnixTable parses /proc/PID/net/unix. Malformed lines are skipped;
// the error is for a table over MaxLines, with the sockets read before it.
//
// The kernel prints a socket's path unescaped (a NUL as '@'), so a path
// with a newline in it, which only its owner can bind, splits its line;
// the second half is skipped as malformed unless it forges a whole line,
// and then at worst it misdescribes a socket of the same namespace.
func ParseUnixTable(data []byte) ([]Socket, error) {
	return parseTable(data, parseUnixLine)
}

// parseUnixLine parses one line of /proc/PID/net/unix:
//
//	Num       RefCount Protocol Flags    Type St Inode Path
//	000000003ec2be24: 00000002 00000000 00010000 0001 01 872248 /tmp/a b.sock
//
// The path is everything after the inode and one space; it may hold
// spaces.
func parseUnixLine(line []byte) (Socket, bool) {
	var buf [7][]byte
	f, path := fields(line, buf[:])
	if len(f) < 7 || len(f[0]) < 2 || f[0][len(f[0])-1] != ':' {
		return Socket{}, false
	}
	flags, err1 := strconv.ParseUint(string(f[3]), 16, 32)
	typ, err2 := strconv.ParseUint(string(f[4]), 16, 16)
	state, err3 := strconv.ParseUint(string(f[5]), 16, 8)
	inode, err4 := strconv.ParseUint(string(f[6]), 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
		return Socket{}, false
	}
	return Socket{
		Proto:     "unix",
		Inode:     inode,
		Path:      string(path),
		Type:      uint16(typ),
		State:     uint8(state),
		Listening: flags&unixAcceptCon != 0,
	}, true
}

func (s Socket) unixString() string {
	switch {
	case s.Path == "":
		return "unix socket"
	case s.Path[0] == '@':
		return "unix (abstract) " + capText(s.Path)
	}
	return "unix " + capText(s.Path)
}
