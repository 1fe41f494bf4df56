package flame

import (
	"bytes"
	"encoding/json"
	"github.com/cpuwhy/cpuwhy/internal/stack"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/test/golden"
)

const (
	libc      = "/usr/lib/x86_64-linux-gnu/libc.so.6"
	libnat    = "/opt/vpnserver/libnat.so"
	vpnserver = "/opt/vpnserver/vpnserver"
)

// seedProfile is the seed's situation: the VPN server's NatThreadMain
// spinning on recvfrom in a loop, the main thread idle in futex, one
// unsymbolized frame in the stripped vpnserver binary.
func seedProfile() *Profile {
	k := func(fn string, off uint64) Frame { return Frame{Function: fn, Kind: stack.Kernel, Offset: off} }
	startThread := Frame{Function: "start_thread", Module: libc, Offset: 0x89134, BuildID: "c047672cae7964324658491e7dee26748ae5d2f8"}
	clone3 := Frame{Function: "__clone3", Module: libc, Offset: 0x109a40, BuildID: "c047672cae7964324658491e7dee26748ae5d2f8"}
	natLoop := Frame{Module: vpnserver, Offset: 0x4a1f3, BuildID: "5e1f0b3c"}
	recvFrom := Frame{Function: "RecvFrom", File: "Network.c", Line: 2301, Module: libnat, Offset: 0x2f3c0}
	recvfrom := Frame{Function: "recvfrom", Module: libc, Offset: 0x1176c2, BuildID: "c047672cae7964324658491e7dee26748ae5d2f8"}
	syscallEntry := []Frame{k("do_syscall_64", 0xffffffff81e5a2c0), k("entry_SYSCALL_64_after_hwframe", 0xffffffff82000130)}
	userRecv := []Frame{recvfrom, recvFrom, natLoop, startThread, clone3}
	return &Profile{
		PID:       5072,
		Process:   "vpnserver",
		Container: "vpn (docker 3f4a1b2c5d6e)",
		Start:     time.Date(2016, 8, 20, 0, 23, 46, 0, time.UTC),
		Duration:  10 * time.Second,
		Period:    10101010 * time.Nanosecond, // 99 Hz
		Missing:   []string{"vpnserver: stripped, no build-id debug file; install vpnserver-dbgsym or pass --debug-dir"},
		Stacks: []Stack{
			{Thread: "NatThreadMain", TID: 4677, Count: 612, Frames: append([]Frame{
				k("__skb_try_recv_datagram", 0xffffffff81c0b8a0),
				k("__skb_recv_udp", 0xffffffff81cf3b10),
				k("udp_recvmsg", 0xffffffff81cf4e20),
				k("inet_recvmsg", 0xffffffff81d01f30),
				k("sock_recvmsg", 0xffffffff81bf2a40),
				k("__sys_recvfrom", 0xffffffff81bf5c50),
				k("__x64_sys_recvfrom", 0xffffffff81bf5d60),
			}, append(syscallEntry, userRecv...)...)},
			{Thread: "NatThreadMain", TID: 4677, Count: 203, Frames: append([]Frame{
				k("__sys_recvfrom", 0xffffffff81bf5c50),
				k("__x64_sys_recvfrom", 0xffffffff81bf5d60),
			}, append(syscallEntry, userRecv...)...)},
			{Thread: "NatThreadMain", TID: 4677, Count: 121, Frames: userRecv},
			{Thread: "NatThreadMain", TID: 4677, Count: 48, Frames: []Frame{
				{Function: "vpn::Session::pump", File: "session.cpp", Line: 88, Module: libnat, Offset: 0x31a10, Inlined: true},
				{Function: "vpn::Session::run()", File: "session.cpp", Line: 140, Module: libnat, Offset: 0x31a10},
				natLoop, startThread, clone3,
			}},
			{Thread: "NatThreadMain", TID: 4677, Count: 7, Frames: []Frame{
				{Module: libnat, Offset: 0x1c2e8}, natLoop, startThread, clone3,
			}},
			{Thread: "vpnserver", TID: 5072, Count: 3, Frames: []Frame{
				k("futex_wait_queue", 0xffffffff8118e0a0),
				k("__x64_sys_futex", 0xffffffff81190f10),
				syscallEntry[0], syscallEntry[1],
				{Function: "__futex_abstimed_wait_common", Module: libc, Offset: 0x8e3a8},
				{Function: "main", Module: vpnserver, Offset: 0x1a2b0},
				{Function: "__libc_start_main", Module: libc, Offset: 0x271ca},
			}},
			{Thread: "vpnserver", TID: 4680, Count: 1, Frames: []Frame{
				{Function: "epoll_wait", Module: libc, Offset: 0x11a5e6},
				natLoop, startThread, clone3,
			}},
		},
	}
}

// golden compares got with testdata/name, or rewrites it under -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	golden.Check(t, filepath.Join("testdata", name), got)
}

func TestGolden(t *testing.T) {
	tests := []struct {
		golden string
		write  func(*bytes.Buffer, *Profile) error
	}{
		{"seed.folded", func(b *bytes.Buffer, p *Profile) error { return WriteFolded(b, p) }},
		{"seed-top.txt", func(b *bytes.Buffer, p *Profile) error { return WriteTop(b, p, 8) }},
		{"seed-top-2.txt", func(b *bytes.Buffer, p *Profile) error { return WriteTop(b, p, 2) }},
		{"seed-html.json", func(b *bytes.Buffer, p *Profile) error {
			data, err := marshalHTMLData(p)
			if err != nil {
				return err
			}
			// Indented so that a change reads as a diff; json.Indent keeps
			// the HTML escapes of the embedded form.
			if err := json.Indent(b, data, "", "  "); err != nil {
				return err
			}
			b.WriteByte('\n')
			return nil
		}},
		{"empty.folded", func(b *bytes.Buffer, _ *Profile) error { return WriteFolded(b, &Profile{}) }},
		{"empty-top.txt", func(b *bytes.Buffer, _ *Profile) error { return WriteTop(b, &Profile{}, 5) }},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			var b bytes.Buffer
			if err := tt.write(&b, seedProfile()); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, tt.golden, b.Bytes())
		})
	}
}

func TestFrameName(t *testing.T) {
	tests := []struct {
		frame Frame
		want  string
	}{
		{Frame{Function: "recvfrom", Module: libc, Offset: 0x1176c2}, "recvfrom"},
		{Frame{Module: vpnserver, Offset: 0x4a1f3}, "vpnserver+0x4a1f3"},
		{Frame{Kind: stack.Kernel, Offset: 0xffffffff81000000}, "[kernel]+0xffffffff81000000"},
		{Frame{Kind: stack.Kernel, Module: "nf_conntrack", Offset: 0x12}, "nf_conntrack+0x12"},
		{Frame{Offset: 0x10}, "[unknown]+0x10"},
	}
	for _, tt := range tests {
		if got := tt.frame.Name(); got != tt.want {
			t.Errorf("%+v.Name() = %q, want %q", tt.frame, got, tt.want)
		}
	}
}

// TestFoldedEscapes: names a target chose (its thread names, its symbols)
// can hold the folded format's separators and terminal escapes; a newline
// would forge a stack line.
func TestFoldedEscapes(t *testing.T) {
	p := &Profile{Stacks: []Stack{{Thread: "a;b\x1b]0;x\a\nfake", TID: 1, Count: 2, Frames: []Frame{
		{Function: "f;g\nh\xff", Module: "m"},
		{Function: "operator<<(std::ostream&, int)", Module: "m"},
	}}}}
	var b bytes.Buffer
	if err := WriteFolded(&b, p); err != nil {
		t.Fatal(err)
	}
	if got, want := b.String(), `a:b\x1b]0:x\a\nfake-1;operator<<(std::ostream&, int);f:g\nh\xff 2`+"\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestAggregate(t *testing.T) {
	a := []Frame{{Function: "a", Module: "m"}, {Function: "main", Module: "m"}}
	b := []Frame{{Function: "b", Module: "m"}, {Function: "main", Module: "m"}}
	samples := []Sample{
		{Frames: b, Thread: "t", TID: 2},
		{Frames: a, Thread: "t", TID: 1},
		{Frames: b, Thread: "t", TID: 1},
		{Frames: a, Thread: "t", TID: 1},
		{Frames: b, Thread: "t", TID: 1},
		{Frames: a, Thread: "u", TID: 1}, // same TID, other name: a reused TID
	}
	got := Aggregate(samples)
	want := []struct {
		thread string
		tid    int
		top    string
		count  int64
	}{
		{"t", 1, "a", 2},
		{"t", 1, "b", 2},
		{"t", 2, "b", 1},
		{"u", 1, "a", 1},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d stacks, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.Thread != w.thread || g.TID != w.tid || g.Frames[0].Function != w.top || g.Count != w.count {
			t.Errorf("stack %d = %s/%d %s ×%d, want %s/%d %s ×%d", i, g.Thread, g.TID, g.Frames[0].Function, g.Count,
				w.thread, w.tid, w.top, w.count)
		}
	}
	// The order must not depend on the input's.
	for i, j := 0, len(samples)-1; i < j; i, j = i+1, j-1 {
		samples[i], samples[j] = samples[j], samples[i]
	}
	again := Aggregate(samples)
	for i := range got {
		if stackKey(got[i]) != stackKey(again[i]) || got[i].Count != again[i].Count {
			t.Errorf("stack %d differs after reversing the input", i)
		}
	}
}

// TestTopStacksByName: a hot loop is sampled at many addresses and lines
// of one function; its stacks are one summary line, since the line shows
// names only, while frames that print differently stay apart.
func TestTopStacksByName(t *testing.T) {
	run := Frame{Function: "run", Module: "/opt/cxxhot", Offset: 0x12c4}
	pumpAt := func(off uint64, line int) Frame {
		return Frame{Function: "vpn::Session::pump", File: "session.cc", Line: line, Module: "/opt/cxxhot", Offset: off}
	}
	p := &Profile{Stacks: []Stack{
		{Thread: "pump", TID: 7, Count: 5, Frames: []Frame{pumpAt(0x1297, 32), run}},
		{Thread: "pump", TID: 7, Count: 4, Frames: []Frame{pumpAt(0x12a1, 33), run}},
		{Thread: "pump", TID: 7, Count: 3, Frames: []Frame{pumpAt(0x12ae, 31), run}},
		{Thread: "pump", TID: 7, Count: 2, Frames: []Frame{{Module: "/opt/cxxhot", Offset: 0x1100}, run}},
		{Thread: "pump", TID: 7, Count: 1, Frames: []Frame{{Module: "/opt/cxxhot", Offset: 0x1108}, run}},
	}}
	var b bytes.Buffer
	if err := WriteTop(&b, p, 5); err != nil {
		t.Fatal(err)
	}
	_, stacks, _ := strings.Cut(b.String(), "Hottest stacks (innermost first):\n")
	want := " 80.0%  pump-7: vpn::Session::pump <- run\n" +
		" 13.3%  pump-7: cxxhot+0x1100 <- run\n" +
		"  6.7%  pump-7: cxxhot+0x1108 <- run\n"
	if stacks != want {
		t.Errorf("hottest stacks:\n%s\nwant:\n%s", stacks, want)
	}
}

func TestFormatOf(t *testing.T) {
	tests := []struct {
		path string
		want Format
		err  bool
	}{
		{"cpu.pb.gz", FormatPprof, false},
		{"/tmp/x/CPU.PB.GZ", FormatPprof, false},
		{"cpu.pb", FormatPprof, false},
		{"cpu.pprof", FormatPprof, false},
		{"out.folded", FormatFolded, false},
		{"flame.html", FormatHTML, false},
		{"out.txt", "", true},
		{"out.gz", "", true},
		{"out", "", true},
	}
	for _, tt := range tests {
		got, err := FormatOf(tt.path)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("FormatOf(%q) = %q, %v; want %q, error %v", tt.path, got, err, tt.want, tt.err)
		}
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"p.pb.gz", "p.folded", "p.html"} {
		path := filepath.Join(dir, name)
		if err := WriteFile(path, seedProfile()); err != nil {
			t.Fatalf("WriteFile(%s): %v", name, err)
		}
		fi, err := os.Stat(path)
		if err != nil || fi.Size() == 0 || fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: %v, %v", name, fi, err)
		}
	}
	err := WriteFile(filepath.Join(dir, "p.txt"), seedProfile())
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte(".pb.gz")) {
		t.Errorf("WriteFile(p.txt) = %v, want an error naming the formats", err)
	}
	if err := WriteFileAs(filepath.Join(dir, "p.txt"), FormatFolded, seedProfile()); err != nil {
		t.Errorf("WriteFileAs(p.txt, folded) = %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 4 {
		t.Errorf("left %d files in %s, want 4 (no temporaries)", len(entries), dir)
	}
	if err := WriteFile(filepath.Join(dir, "no/such/dir/p.html"), seedProfile()); err == nil {
		t.Error("WriteFile into a missing directory succeeded")
	}
}

// TestWritersEdgeCases runs every writer on profiles the sampler can
// produce at the edges: nothing sampled, a stack the unwinder could not
// walk at all, a zero count; and on one no writer may accept.
func TestWritersEdgeCases(t *testing.T) {
	writers := map[Format]func(*bytes.Buffer, *Profile) error{
		FormatPprof:  func(b *bytes.Buffer, p *Profile) error { return WritePprof(b, p) },
		FormatFolded: func(b *bytes.Buffer, p *Profile) error { return WriteFolded(b, p) },
		FormatHTML:   func(b *bytes.Buffer, p *Profile) error { return WriteHTML(b, p) },
		"top":        func(b *bytes.Buffer, p *Profile) error { return WriteTop(b, p, 5) },
	}
	tests := []struct {
		name    string
		profile *Profile
		wantErr bool
	}{
		{"empty", &Profile{}, false},
		{"no frames", &Profile{Period: time.Millisecond, Stacks: []Stack{{Thread: "t", TID: 1, Count: 3}}}, false},
		{"zero count", &Profile{Stacks: []Stack{{Thread: "t", TID: 1, Frames: []Frame{{Function: "f"}}}}}, false},
		{"outermost inlined", &Profile{Stacks: []Stack{{Thread: "t", TID: 1, Count: 1, Frames: []Frame{{Function: "f", Module: "m", Inlined: true}}}}}, false},
		{"negative count", &Profile{Stacks: []Stack{{Thread: "t", TID: 1, Count: -1}}}, true},
		{"nil", nil, true},
	}
	for _, tt := range tests {
		for format, write := range writers {
			var b bytes.Buffer
			err := write(&b, tt.profile)
			if (err != nil) != tt.wantErr {
				t.Errorf("%s, %s: error %v, want error %v", tt.name, format, err, tt.wantErr)
			}
		}
	}
}

func TestReadable(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{10101010 * time.Nanosecond, "10.1ms"}, // 99 Hz
		{10007646552 * time.Nanosecond, "10s"},
		{1010777625 * time.Nanosecond, "1.01s"},
		{10051 * time.Millisecond, "10.1s"},
		{999 * time.Nanosecond, "999ns"},
		{500 * time.Microsecond, "500µs"},
		{0, "0s"},
	}
	for _, tt := range tests {
		if got := readable(tt.in).String(); got != tt.want {
			t.Errorf("readable(%v) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// TestTopFiguresRounded checks the summary's first line as record prints
// it after a real window, whose timer never lands on a round figure.
func TestTopFiguresRounded(t *testing.T) {
	p := seedProfile()
	p.Duration = 10007646552 * time.Nanosecond
	var b bytes.Buffer
	if err := WriteTop(&b, p, 1); err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(b.String(), "\n")
	if want := "995 samples every 10.1ms (10.1s of CPU) in 10s"; first != want {
		t.Errorf("first line %q, want %q", first, want)
	}
}

// TestWriteTopCount runs WriteTop with every kind of count a command line
// can give it: a negative count once sliced the lists and panicked.
func TestWriteTopCount(t *testing.T) {
	for _, n := range []int{math.MinInt, -3, -1, 0, 1, 2, 1000, math.MaxInt} {
		var b bytes.Buffer
		if err := WriteTop(&b, seedProfile(), n); err != nil {
			t.Errorf("WriteTop(%d): %v", n, err)
		}
		rows := len(regexp.MustCompile(`(?m)^ *[0-9.]+%`).FindAllString(b.String(), -1))
		if n <= 0 && rows != 0 {
			t.Errorf("WriteTop(%d) printed %d rows, want none:\n%s", n, rows, b.String())
		}
		if n > 0 && rows == 0 {
			t.Errorf("WriteTop(%d) printed no rows:\n%s", n, b.String())
		}
	}
}
