package fds

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/cpuwhy/cpuwhy/internal/proc"
)

// fixture is a recorded process: testdata/proc/42 holds fd links as
// symlinks and net tables copied from testdata/tables.
const fixturePID = 42

// countingDescriber returns a Describer over the fixture tree that counts
// the reads of each table, with protocol names coming from protocol.
func countingDescriber(t *testing.T, protocol func(fd string) (string, error)) (*Describer, map[string]int) {
	t.Helper()
	d := NewDescriber(proc.FS{Root: "testdata/proc"})
	opened := map[string]int{}
	d.open = func(path string) (*os.File, error) {
		opened[filepath.Base(path)]++
		return os.Open(path)
	}
	if protocol != nil {
		d.socketProtocol = func(path string) (string, error) { return protocol(filepath.Base(path)) }
	}
	return d, opened
}

func fixtureFDs(t *testing.T) []int {
	t.Helper()
	entries, err := os.ReadDir("testdata/proc/42/fd")
	if err != nil {
		t.Fatal(err)
	}
	var fdList []int
	for _, e := range entries {
		var fd int
		if _, err := fmt.Sscan(e.Name(), &fd); err != nil {
			t.Fatalf("fixture fd %q", e.Name())
		}
		fdList = append(fdList, fd)
	}
	slices.Sort(fdList)
	return fdList
}

func formatDescs(descs map[int]string) []byte {
	var fdList []int
	for fd := range descs {
		fdList = append(fdList, fd)
	}
	sort.Ints(fdList)
	var b strings.Builder
	for _, fd := range fdList {
		fmt.Fprintf(&b, "%d\t%s\n", fd, descs[fd])
	}
	return []byte(b.String())
}

// TestDescribeAllFixture describes every fd of the recorded process
// without protocol names (as when getxattr cannot reach the socket): every
// table is searched, each at most once.
func TestDescribeAllFixture(t *testing.T) {
	d, opened := countingDescriber(t, nil)
	fdList := fixtureFDs(t)
	descs := d.DescribeAll(fixturePID, append(fdList, 99)) // 99 is not open
	if _, ok := descs[99]; ok {
		t.Errorf("fd 99 described as %q; it is not open", descs[99])
	}
	checkGolden(t, "testdata/proc/42.golden", formatDescs(descs))
	for name, n := range opened {
		if n != 1 {
			t.Errorf("table %s read %d times", name, n)
		}
	}
	// Socket 424242 is in no table, so every table was searched.
	for _, tab := range tables {
		if opened[tab.name] != 1 {
			t.Errorf("table %s read %d times, want once", tab.name, opened[tab.name])
		}
	}

	// Describe agrees with DescribeAll.
	for _, fd := range fdList {
		got, err := d.Describe(fixturePID, fd)
		if err != nil || got != descs[fd] {
			t.Errorf("Describe(%d) = %q, %v; DescribeAll said %q", fd, got, err, descs[fd])
		}
	}
}

// TestDescribeProtocolPicksTable checks that a known protocol name means
// reading its table alone, and that a wrong one (the fd was reused between
// readlink and getxattr) still finds the socket.
func TestDescribeProtocolPicksTable(t *testing.T) {
	d, opened := countingDescriber(t, func(fd string) (string, error) { return "UDP", nil })
	got, err := d.Describe(fixturePID, 3)
	if want := "udp 0.0.0.0:1701"; err != nil || got != want {
		t.Errorf("Describe = %q, %v; want %q", got, err, want)
	}
	if want := map[string]int{"udp": 1}; !maps.Equal(opened, want) {
		t.Errorf("tables read %v, want %v", opened, want)
	}

	d, opened = countingDescriber(t, func(fd string) (string, error) { return "TCP", nil })
	got, err = d.Describe(fixturePID, 7)
	if want := "unix /run/docker.sock"; err != nil || got != want {
		t.Errorf("Describe with a stale protocol = %q, %v; want %q", got, err, want)
	}
	if opened["tcp"] != 1 || opened["unix"] != 1 {
		t.Errorf("tables read %v, want tcp then unix", opened)
	}

	// A protocol with no table: its name is all there is to say.
	d, _ = countingDescriber(t, func(fd string) (string, error) { return "AF_VSOCK", nil })
	if got, _ := d.Describe(fixturePID, 13); got != "socket:[424242] (vsock)" {
		t.Errorf("Describe of a vsock = %q", got)
	}
	// A known protocol but in no table: an unbound socket.
	d, _ = countingDescriber(t, func(fd string) (string, error) { return "TCP", nil })
	if got, _ := d.Describe(fixturePID, 13); got != "tcp socket:[424242]" {
		t.Errorf("Describe of an unbound TCP socket = %q", got)
	}
}

func TestDescribeFixtureGone(t *testing.T) {
	d := NewDescriber(proc.FS{Root: "testdata/proc"})
	for _, tc := range []struct{ pid, fd int }{{fixturePID, 99}, {43, 0}} {
		if _, err := d.Describe(tc.pid, tc.fd); !errors.Is(err, proc.ErrGone) {
			t.Errorf("Describe(%d, %d) error = %v, want ErrGone", tc.pid, tc.fd, err)
		}
	}
	if got := d.DescribeAll(43, []int{0, 1}); len(got) != 0 {
		t.Errorf("DescribeAll of a gone process = %v", got)
	}
}

// TestDescribeLongLines checks that the streaming reader skips a line
// longer than its buffer and still finds the socket after it.
func TestDescribeLongLines(t *testing.T) {
	root := t.TempDir()
	for _, dir := range []string{"7/fd", "7/net"} {
		if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("socket:[6001]", filepath.Join(root, "7/fd/3")); err != nil {
		t.Fatal(err)
	}
	udp, err := os.ReadFile("testdata/tables/udp-hand.txt")
	if err != nil {
		t.Fatal(err)
	}
	header, rest, _ := strings.Cut(string(udp), "\n")
	long := strings.Repeat("0", 200<<10)
	table := header + "\n" + long + "\n" + strings.Repeat("x", maxLineLen+1) + "\n" + rest
	if err := os.WriteFile(filepath.Join(root, "7/net/udp"), []byte(table), 0o644); err != nil {
		t.Fatal(err)
	}
	d := NewDescriber(proc.FS{Root: root})
	got, err := d.Describe(7, 3)
	if want := "udp 10.0.0.1:1701 -> 10.0.0.2:500"; err != nil || got != want {
		t.Errorf("Describe = %q, %v; want %q", got, err, want)
	}
}
