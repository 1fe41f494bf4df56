// Package fds says what a file descriptor of a process is, in one line:
// "udp 0.0.0.0:1701", "tcp 127.0.0.1:5432 -> 127.0.0.1:40112
// ESTABLISHED", "unix /run/docker.sock", "pipe:[1234]", "eventfd",
// "/var/log/app.log". The syscall profile splits calls by fd, and the
// report names each fd with it.
//
// A Describer reads the fd's link (/proc/PID/fd/N) and, for a socket, finds
// its inode in the socket tables of /proc/PID/net, which show the network
// namespace of PID: a container's sockets are described as the container
// sees them, though the host's /proc/net does not list them. Which table
// to read comes from the socket's protocol name (one getxattr through the
// fd link, sys.SocketProtocol); failing that every table is searched.
// Tables are streamed and only the wanted inodes kept, and DescribeAll
// reads each at most once, so describing fds of a process with a million
// connections costs time but not memory. File paths are those the target
// sees (a path inside its container): they are only read as link text,
// never opened or followed.
//
// The parsers (ParseFDLink, ParseInetTable, ParseUnixTable,
// ParseNetlinkTable, ParsePacketTable) are pure functions over the bytes
// of one file, skip malformed lines, and stop at MaxLines. Text taken from
// the target (paths, unix socket names) is kept as the target wrote it,
// cut at PATH_MAX: it may hold escape sequences, newlines and invalid
// UTF-8, which text outputs escape where they write it (package escape)
// and JSON encodes.
//
// Limits: a description is of what the fd is now, not what it was when
// the profile counted its calls: an fd closed and reused in between is
// described as its new self. A socket that is in no table (an unbound TCP
// socket, one that belongs to another network namespace than its
// process's) is "tcp socket:[N]", or "socket:[N]" when even its protocol
// is unknown. The address decoding assumes the tables come from a kernel
// of this machine's byte order, which they always do. Unix sockets are
// described by their own bound name; the peer of a connected unix socket
// is not in /proc and is not shown.
//
// Errors: Describe returns an error matching proc.ErrGone when the process
// or the fd no longer exists, and an error matching fs.ErrPermission when
// the caller may not read the process's fds. DescribeAll leaves the fds it
// cannot describe out of its map.
package fds
