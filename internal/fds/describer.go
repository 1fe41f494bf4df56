package fds

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/sys"
)

// Describer describes fds of processes, reading through a proc.FS root.
type Describer struct {
	fs proc.FS
	// socketProtocol names a socket's protocol from its fd link, to pick
	// the one table to read; sys.SocketProtocol unless a test swaps it.
	socketProtocol func(path string) (string, error)
	// open opens a table; os.Open unless a test counts the reads.
	open func(path string) (*os.File, error)
}

// NewDescriber returns a Describer reading fs.
func NewDescriber(fs proc.FS) *Describer {
	return &Describer{fs: fs, socketProtocol: sys.SocketProtocol, open: os.Open}
}

// table is one /proc/PID/net socket table.
type table struct {
	name  string // file name, also the protocol in descriptions
	parse func(line []byte) (Socket, bool)
}

func inetTable(name string) table {
	return table{name, func(line []byte) (Socket, bool) { return parseInetLine(line, name) }}
}

// tables in the order a socket of unknown protocol is looked for: the
// common ones first.
var tables = []table{
	inetTable("tcp"), inetTable("udp"), {"unix", parseUnixLine},
	inetTable("tcp6"), inetTable("udp6"),
	{"netlink", parseNetlinkLine},
	inetTable("raw"), inetTable("raw6"),
	{"packet", parsePacketLine},
	inetTable("icmp"), inetTable("icmp6"),
	inetTable("udplite"), inetTable("udplite6"),
}

// protocolTables maps the kernel's socket protocol names (struct proto's
// name, as system.sockprotoname gives it) to the table that lists them.
var protocolTables = map[string]string{
	"TCP": "tcp", "TCPv6": "tcp6",
	"UDP": "udp", "UDPv6": "udp6",
	"UDP-Lite": "udplite", "UDPLITEv6": "udplite6",
	"RAW": "raw", "RAWv6": "raw6",
	"PING": "icmp", "PINGv6": "icmp6",
	"UNIX": "unix", "UNIX-STREAM": "unix",
	"NETLINK": "netlink", "PACKET": "packet",
}

// Describe returns a one-line description of fd of pid, such as
// "udp 127.0.0.1:1701", "tcp 127.0.0.1:5432 -> 127.0.0.1:40112
// ESTABLISHED", "unix /run/docker.sock", "pipe:[1234]", "eventfd" or
// "/var/log/app.log", and an error matching proc.ErrGone when the process
// or the fd is gone.
func (d *Describer) Describe(pid, fd int) (string, error) {
	descs, errs := d.describe(pid, []int{fd})
	if err := errs[fd]; err != nil {
		return "", err
	}
	return descs[fd], nil
}

// DescribeAll describes many fds of one pid, reading each /proc/PID/net
// table at most once. An fd that cannot be described (closed, or the
// process gone or not readable) is absent from the map.
func (d *Describer) DescribeAll(pid int, fdList []int) map[int]string {
	descs, _ := d.describe(pid, fdList)
	return descs
}

// describe describes fdList and returns the errors of the fds it could
// not describe.
func (d *Describer) describe(pid int, fdList []int) (map[int]string, map[int]error) {
	descs := make(map[int]string, len(fdList))
	errs := map[int]error{}
	sockets := map[uint64][]int{}    // inode -> fds (dup'ed fds share one)
	protocols := map[uint64]string{} // inode -> sockprotoname, when known
	var wantTables []string          // tables named by protocols, in first-seen order
	for _, fd := range fdList {
		if _, done := descs[fd]; done {
			continue
		}
		path := d.fs.PIDPath(pid, "fd", strconv.Itoa(fd))
		target, err := os.Readlink(path)
		if err != nil {
			errs[fd] = gone(fmt.Errorf("reading fd %d of %d: %w", fd, pid, err))
			continue
		}
		link := ParseFDLink(target)
		descs[fd] = link.String()
		if link.Kind != KindSocket {
			continue
		}
		sockets[link.Inode] = append(sockets[link.Inode], fd)
		if _, seen := protocols[link.Inode]; seen {
			continue
		}
		name, err := d.socketProtocol(path)
		if err != nil {
			continue // a fixture tree, or the fd just closed: search every table
		}
		protocols[link.Inode] = name
		if t, ok := protocolTables[name]; ok && !slices.Contains(wantTables, t) {
			wantTables = append(wantTables, t)
		}
	}
	if len(sockets) == 0 {
		return descs, errs
	}

	found := map[uint64]Socket{}
	var tableErrs []error
	read := map[string]bool{}
	search := func(t table) {
		if read[t.name] || len(found) == len(sockets) {
			return
		}
		read[t.name] = true
		if err := d.readTable(pid, t, sockets, found); err != nil {
			tableErrs = append(tableErrs, err)
		}
	}
	for _, name := range wantTables {
		for _, t := range tables {
			if t.name == name {
				search(t)
			}
		}
	}
	// A socket whose protocol is unknown, or that is not where its
	// protocol says (unbound, in another namespace, or the fd was reused
	// between readlink and getxattr), is looked for everywhere.
	for _, t := range tables {
		search(t)
	}

	if len(tableErrs) > 0 {
		if _, err := os.Stat(d.fs.PIDPath(pid)); err != nil {
			err = gone(fmt.Errorf("reading sockets of %d: %w", pid, err))
			for _, fds := range sockets {
				for _, fd := range fds {
					delete(descs, fd)
					errs[fd] = err
				}
			}
			return descs, errs
		}
	}
	for inode, fds := range sockets {
		desc := unfoundSocket(inode, protocols[inode])
		if s, ok := found[inode]; ok {
			desc = s.String()
		}
		for _, fd := range fds {
			descs[fd] = desc
		}
	}
	return descs, errs
}

// unfoundSocket describes a socket that is in none of the tables: "tcp
// socket:[N]" when its protocol is known (an unbound TCP socket),
// "socket:[N] (vsock)" for a protocol without a table.
func unfoundSocket(inode uint64, protocol string) string {
	s := "socket:[" + strconv.FormatUint(inode, 10) + "]"
	if protocol == "" {
		return s
	}
	if t, ok := protocolTables[protocol]; ok {
		return t + " " + s
	}
	return s + " (" + capText(strings.ToLower(strings.TrimPrefix(protocol, "AF_"))) + ")"
}

// readTable reads /proc/PID/net/<t.name> line by line and records in found
// the sockets whose inodes are wanted, stopping early once all are. It
// streams, so memory does not grow with the table.
func (d *Describer) readTable(pid int, t table, wanted map[uint64][]int, found map[uint64]Socket) error {
	path := d.fs.PIDPath(pid, "net", t.name)
	f, err := d.open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	if err := skipLine(r); err != nil { // the header
		return readErr(path, err)
	}
	for n := 0; ; n++ {
		if n >= MaxLines {
			return fmt.Errorf("reading %s: %w: more than %d lines", path, ErrTooLarge, MaxLines)
		}
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if err := skipLine(r); err != nil {
				return readErr(path, err)
			}
			continue
		}
		line = bytes.TrimSuffix(line, []byte("\n"))
		if len(line) <= maxLineLen {
			if s, ok := t.parse(line); ok {
				if _, want := wanted[s.Inode]; want {
					found[s.Inode] = s
					if len(found) == len(wanted) {
						return nil
					}
				}
			}
		}
		if err != nil {
			return readErr(path, err)
		}
	}
}

// skipLine reads up to and including the next newline.
func skipLine(r *bufio.Reader) error {
	for {
		_, err := r.ReadSlice('\n')
		if !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
	}
}

func readErr(path string, err error) error {
	if err == io.EOF {
		return nil
	}
	return fmt.Errorf("reading %s: %w", path, err)
}

// gone marks errors about a vanished process or fd as proc.ErrGone: ENOENT
// when /proc/PID or the fd link no longer exists, ESRCH when the process
// is being reaped.
func gone(err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("%w: %w", proc.ErrGone, err)
	}
	return err
}
