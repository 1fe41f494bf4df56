package fds

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/cpuwhy/cpuwhy/internal/escape"
	"github.com/cpuwhy/cpuwhy/test/golden"
)

// parseNamed parses a table sample by its file name: tcp.txt, tcp6-hand.txt.
func parseNamed(t testing.TB, name string, data []byte) ([]Socket, error) {
	table, _, _ := strings.Cut(strings.TrimSuffix(name, ".txt"), "-")
	switch table {
	case "unix":
		return ParseUnixTable(data)
	case "netlink":
		return ParseNetlinkTable(data)
	case "packet":
		return ParsePacketTable(data)
	}
	return ParseInetTable(data, table)
}

func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	golden.Check(t, path, got)
}

// TestParseTablesGolden parses every table under testdata/tables, real
// ones captured from /proc/net and hand-made ones, and compares each
// socket's inode and description with the .golden file beside it, the
// description escaped as a text report writes it.
func TestParseTablesGolden(t *testing.T) {
	samples, err := filepath.Glob("testdata/tables/*.txt")
	if err != nil || len(samples) == 0 {
		t.Fatalf("no samples: %v", err)
	}
	for _, sample := range samples {
		name := filepath.Base(sample)
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(sample)
			if err != nil {
				t.Fatal(err)
			}
			socks, err := parseNamed(t, name, data)
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			for _, s := range socks {
				fmt.Fprintf(&got, "%d\t%s\n", s.Inode, escape.String(s.String()))
			}
			checkGolden(t, strings.TrimSuffix(sample, ".txt")+".golden", got.Bytes())
		})
	}
}

func TestParseInetTableUnknown(t *testing.T) {
	if _, err := ParseInetTable(nil, "sctp"); err == nil {
		t.Error("no error for an unknown table")
	}
}

func TestParseTableTooLarge(t *testing.T) {
	data := []byte("header\n" + strings.Repeat("x\n", MaxLines) + "0000000000000000: 00000002 00000000 00010000 0001 01 7001 /late\n")
	socks, err := ParseUnixTable(data)
	if !errors.Is(err, ErrTooLarge) || len(socks) != 0 {
		t.Errorf("ParseUnixTable of %d lines = %d sockets, %v; want ErrTooLarge", MaxLines+2, len(socks), err)
	}
}

func TestParseFDLink(t *testing.T) {
	for _, tc := range []struct {
		link string
		want Link
		desc string
	}{
		{"socket:[5678]", Link{Kind: KindSocket, Inode: 5678}, "socket:[5678]"},
		{"pipe:[1234]", Link{Kind: KindPipe, Inode: 1234}, "pipe:[1234]"},
		{"anon_inode:[eventfd]", Link{Kind: KindAnon, Name: "eventfd"}, "eventfd"},
		{"anon_inode:[timerfd]", Link{Kind: KindAnon, Name: "timerfd"}, "timerfd"},
		{"anon_inode:[eventpoll]", Link{Kind: KindAnon, Name: "eventpoll"}, "epoll"},
		{"anon_inode:[signalfd]", Link{Kind: KindAnon, Name: "signalfd"}, "signalfd"},
		{"anon_inode:inotify", Link{Kind: KindAnon, Name: "inotify"}, "inotify"},
		{"anon_inode:[io_uring]", Link{Kind: KindAnon, Name: "io_uring"}, "io_uring"},
		{"anon_inode:bpf-map", Link{Kind: KindAnon, Name: "bpf-map"}, "bpf-map"},
		{"/var/log/app.log", Link{Kind: KindPath, Name: "/var/log/app.log"}, "/var/log/app.log"},
		{"/tmp/x (deleted)", Link{Kind: KindPath, Name: "/tmp/x", Deleted: true}, "/tmp/x (deleted)"},
		{"/memfd:jit (deleted)", Link{Kind: KindPath, Name: "/memfd:jit", Deleted: true}, "/memfd:jit (deleted)"},
		{"/dev/null", Link{Kind: KindPath, Name: "/dev/null"}, "/dev/null"},
		{"/dev/pts/0", Link{Kind: KindPath, Name: "/dev/pts/0"}, "/dev/pts/0"},
		{"/tmp/\x1b[2Jevil\n", Link{Kind: KindPath, Name: "/tmp/\x1b[2Jevil\n"}, "/tmp/\x1b[2Jevil\n"}, // escaped where written
		{"net:[4026531840]", Link{Kind: KindOther}, "net:[4026531840]"},
		{"socket:[]", Link{Kind: KindOther}, "socket:[]"},
		{"socket:[-1]", Link{Kind: KindOther}, "socket:[-1]"},
		{"socket:[+1]", Link{Kind: KindOther}, "socket:[+1]"},
		{"socket:[99999999999999999999]", Link{Kind: KindOther}, "socket:[99999999999999999999]"},
		{"pipe:1234", Link{Kind: KindOther}, "pipe:1234"},
		{"anon_inode:", Link{Kind: KindOther}, "anon_inode:"},
		{"anon_inode:[]", Link{Kind: KindOther}, "anon_inode:[]"},
		{"", Link{Kind: KindOther}, ""},
	} {
		got := ParseFDLink(tc.link)
		tc.want.Raw = tc.link
		if got != tc.want {
			t.Errorf("ParseFDLink(%q) = %+v, want %+v", tc.link, got, tc.want)
		}
		if s := got.String(); s != tc.desc {
			t.Errorf("ParseFDLink(%q).String() = %q, want %q", tc.link, s, tc.desc)
		}
	}
}

func TestCapText(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"kept exactly", "ok\xffé\u0085 \u202egpj.exe\u200b\ue2f5\x1b]0;x\a\n", "ok\xffé\u0085 \u202egpj.exe\u200b\ue2f5\x1b]0;x\a\n"},
		{"cut on a rune boundary", strings.Repeat("é", maxText), strings.Repeat("é", maxText/2)},
		{"cut in invalid UTF-8", strings.Repeat("\x80", maxText+1), strings.Repeat("\x80", maxText-3)},
	}
	for _, tt := range tests {
		if got := capText(tt.in); got != tt.want {
			t.Errorf("%s: capText gave %d bytes %.20q, want %d bytes", tt.name, len(got), got, len(tt.want))
		}
	}
}

// printable is what a description cpuwhy composes from numbers must be:
// one line a terminal shows as it is.
func printable(t *testing.T, s string) {
	t.Helper()
	for _, r := range s {
		if !unicode.IsPrint(r) && r != ' ' {
			t.Fatalf("description %q holds %U", s, r)
		}
	}
}

func fuzzSeeds(f *testing.F, pattern string) {
	samples, _ := filepath.Glob(filepath.Join("testdata", "tables", pattern))
	if len(samples) == 0 {
		f.Fatalf("no seeds match %s", pattern)
	}
	for _, s := range samples {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
}

func FuzzParseInetTable(f *testing.F) {
	fuzzSeeds(f, "[rtu][acd]*")
	protos := []string{"tcp", "tcp6", "udp", "udp6", "raw", "raw6"}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, proto := range protos {
			start := time.Now()
			socks, err := ParseInetTable(data, proto)
			// Only a blow-up: a table parses in microseconds.
			if elapsed := time.Since(start); elapsed > time.Second {
				t.Fatalf("took %v on %d bytes", elapsed, len(data))
			}
			if err != nil && !errors.Is(err, ErrTooLarge) {
				t.Fatal(err)
			}
			if len(socks) > bytes.Count(data, []byte("\n")) {
				t.Fatalf("%d sockets from %d lines", len(socks), bytes.Count(data, []byte("\n")))
			}
			for _, s := range socks {
				if s.Proto != proto || !s.Local.IsValid() || !s.Remote.IsValid() || s.Local.Addr().Is4() != s.Remote.Addr().Is4() {
					t.Fatalf("bad socket %+v", s)
				}
				printable(t, s.String())
			}
		}
	})
}

func FuzzParseUnixTable(f *testing.F) {
	fuzzSeeds(f, "unix*")
	f.Fuzz(func(t *testing.T, data []byte) {
		socks, err := ParseUnixTable(data)
		if err != nil && !errors.Is(err, ErrTooLarge) {
			t.Fatal(err)
		}
		for _, s := range socks {
			if len(s.Path) > maxLineLen || strings.Contains(s.Path, "\n") {
				t.Fatalf("path %q", s.Path)
			}
			desc := s.String()
			if !strings.HasPrefix(desc, "unix ") || len(desc) > maxLineLen+32 {
				t.Fatalf("description %q", desc)
			}
			// The name as the target bound it, escaped only where
			// text is written.
			if !strings.HasSuffix(desc, s.Path) {
				t.Fatalf("description %q of path %q", desc, s.Path)
			}
		}
		// The other line formats must be as robust.
		ParseNetlinkTable(data)
		ParsePacketTable(data)
	})
}

func FuzzParseFDLink(f *testing.F) {
	for _, s := range []string{
		"socket:[5678]", "pipe:[1234]", "anon_inode:[eventfd]", "anon_inode:inotify",
		"/var/log/app.log", "/tmp/x (deleted)", "net:[4026531840]", "socket:[", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, link string) {
		l := ParseFDLink(link)
		desc := l.String()
		if len(desc) > maxText+len(deletedSuffix) {
			t.Fatalf("description of %d bytes", len(desc))
		}
		if l.Kind == KindSocket || l.Kind == KindPipe {
			printable(t, desc)
		}
		if l.Kind == KindPath && len(link) <= maxText && desc != link {
			t.Fatalf("path %q described as %q, not as it is", link, desc)
		}
		switch l.Kind {
		case KindSocket, KindPipe:
			if back := ParseFDLink(desc); back.Kind != l.Kind || back.Inode != l.Inode {
				t.Fatalf("%q does not parse back to %+v", desc, l)
			}
		case KindPath:
			if !strings.HasPrefix(desc, "/") {
				t.Fatalf("path description %q", desc)
			}
		}
	})
}
