package fds

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Kind is what an fd link names.
type Kind int

// The kinds of fd link. KindOther is a link of a form this package does not
// know, kept as the kernel wrote it.
const (
	KindOther  Kind = iota
	KindSocket      // socket:[INODE]
	KindPipe        // pipe:[INODE]
	KindAnon        // anon_inode:NAME (eventfd, timerfd, epoll, ...)
	KindPath        // a file, device or directory path
)

func (k Kind) String() string {
	switch k {
	case KindSocket:
		return "socket"
	case KindPipe:
		return "pipe"
	case KindAnon:
		return "anon_inode"
	case KindPath:
		return "path"
	}
	return "other"
}

// Link is a parsed /proc/PID/fd/N link.
type Link struct {
	Kind    Kind
	Inode   uint64 // sockets and pipes
	Name    string // anon_inode name without brackets, or the path
	Deleted bool   // a path whose file was unlinked (" (deleted)")
	Raw     string // the link as read
}

// deletedSuffix is what d_path appends to the path of an unlinked file.
const deletedSuffix = " (deleted)"

// ParseFDLink parses the target of a /proc/PID/fd/N link. It never fails:
// a link of an unknown form is KindOther.
func ParseFDLink(link string) Link {
	l := Link{Raw: link}
	switch {
	case strings.HasPrefix(link, "/"):
		l.Kind = KindPath
		l.Name, l.Deleted = strings.CutSuffix(link, deletedSuffix)
	case strings.HasPrefix(link, "anon_inode:"):
		name := strings.TrimPrefix(link, "anon_inode:")
		// Most anon inode names are bracketed ("[eventfd]"); a few are
		// not ("inotify").
		if len(name) >= 2 && name[0] == '[' && name[len(name)-1] == ']' {
			name = name[1 : len(name)-1]
		}
		if name != "" {
			l.Kind, l.Name = KindAnon, name
		}
	default:
		if ino, ok := bracketInode(link, "socket:"); ok {
			l.Kind, l.Inode = KindSocket, ino
		} else if ino, ok := bracketInode(link, "pipe:"); ok {
			l.Kind, l.Inode = KindPipe, ino
		}
	}
	return l
}

// bracketInode parses prefix + "[" + decimal inode + "]".
func bracketInode(link, prefix string) (uint64, bool) {
	rest, ok := strings.CutPrefix(link, prefix)
	if !ok || len(rest) < 3 || rest[0] != '[' || rest[len(rest)-1] != ']' {
		return 0, false
	}
	digits := rest[1 : len(rest)-1]
	if digits[0] == '+' || digits[0] == '-' {
		return 0, false
	}
	ino, err := strconv.ParseUint(digits, 10, 64)
	return ino, err == nil
}

// anonNames are the anon_inode names (fs/anon_inodes.c callers) that read
// better under the name users know them by.
var anonNames = map[string]string{
	"eventpoll": "epoll",
}

// String describes every link but a socket completely; a socket is only
// "socket:[INODE]" here, as the Describer needs the target's network
// tables to say more.
func (l Link) String() string {
	switch l.Kind {
	case KindSocket:
		return "socket:[" + strconv.FormatUint(l.Inode, 10) + "]"
	case KindPipe:
		return "pipe:[" + strconv.FormatUint(l.Inode, 10) + "]"
	case KindAnon:
		if n, ok := anonNames[l.Name]; ok {
			return n
		}
		return capText(l.Name)
	case KindPath:
		if l.Deleted {
			return capText(l.Name) + deletedSuffix
		}
		return capText(l.Name)
	}
	return capText(l.Raw)
}

// maxText caps a name taken from the target (a path, a unix socket path):
// PATH_MAX, which no real one exceeds.
const maxText = 4096

// capText cuts text from the target at maxText bytes, on a rune boundary.
// It does not escape it: a description keeps the target's bytes, for JSON
// and for matching, and a text output escapes it where it is written
// (package escape), as it does every name a target chose.
func capText(s string) string {
	if len(s) <= maxText {
		return s
	}
	cut := maxText
	for i := 0; i < utf8.UTFMax-1 && cut > 0 && !utf8.RuneStart(s[cut]); i++ {
		cut--
	}
	return s[:cut]
}
