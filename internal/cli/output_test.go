package cli

import (
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/test/privtest"
)

// TestOutputOntoSpecialFiles writes the profile of record and of the
// diagnosis, through the built binary, onto what must never be replaced:
// a device node (copies of /dev/null and /dev/full, made in a temporary
// directory), a FIFO, a symbolic link and /dev/stdout. Each must still be
// what it was, and the bytes must have gone where it points. Once, -o
// /dev/full turned the device into a 576-byte regular file.
func TestOutputOntoSpecialFiles(t *testing.T) {
	busy := startProgram(t, "compute")
	pid := strconv.Itoa(busy.Process.Pid)
	commands := map[string][]string{
		"record":    {"record", "-d", "0.5", "--format", "folded", pid},
		"diagnosis": {"-d", "0.5", "--format", "folded", pid},
	}
	for name, args := range commands {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			run := func(t *testing.T, out string) (int, string, string) {
				t.Helper()
				return runBinary(t, nil, append(args, "-o", out)...)
			}
			// A folded profile of compute: the thread named cruncher
			// at the root of its stacks.
			isProfile := func(s string) bool { return strings.Contains(s, "cruncher-") && strings.Contains(s, ";") }

			t.Run("device", func(t *testing.T) {
				null := mknodLike(t, dir, "null", "/dev/null")
				code, _, errOut := run(t, null)
				if code != 0 {
					t.Fatalf("exit %d: %s", code, errOut)
				}
				assertNode(t, null, "/dev/null")
			})
			t.Run("full device", func(t *testing.T) {
				full := mknodLike(t, dir, "full", "/dev/full")
				code, _, errOut := run(t, full)
				if code != 1 {
					t.Fatalf("exit %d, want 1 (the device is full): %s", code, errOut)
				}
				assertOneLine(t, errOut, "no space left on device", full)
				assertNode(t, full, "/dev/full")
			})
			t.Run("fifo", func(t *testing.T) {
				fifo := filepath.Join(dir, "fifo")
				if err := syscall.Mkfifo(fifo, 0o600); err != nil {
					t.Fatal(err)
				}
				got := make(chan string, 1)
				go func() {
					b, _ := os.ReadFile(fifo) // blocks until cpuwhy opens it
					got <- string(b)
				}()
				code, _, errOut := run(t, fifo)
				if code != 0 {
					t.Fatalf("exit %d: %s", code, errOut)
				}
				select {
				case s := <-got:
					if !isProfile(s) {
						t.Errorf("the FIFO's reader got %q", s)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("the FIFO's reader got nothing")
				}
				if fi, err := os.Lstat(fifo); err != nil || fi.Mode().Type() != fs.ModeNamedPipe {
					t.Errorf("the FIFO is now %v, %v", fi.Mode(), err)
				}
			})
			t.Run("symlink", func(t *testing.T) {
				target := filepath.Join(dir, "target.folded")
				if err := os.WriteFile(target, []byte("old\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				link := filepath.Join(dir, "link.folded")
				if err := os.Symlink("target.folded", link); err != nil {
					t.Fatal(err)
				}
				code, _, errOut := run(t, link)
				if code != 0 {
					t.Fatalf("exit %d: %s", code, errOut)
				}
				if dest, err := os.Readlink(link); err != nil || dest != "target.folded" {
					t.Errorf("the link now leads to %q (%v)", dest, err)
				}
				b, err := os.ReadFile(target)
				if err != nil || !isProfile(string(b)) {
					t.Errorf("the link's target holds %q (%v)", b, err)
				}
				if fi, _ := os.Stat(target); fi.Mode().Perm() != 0o600 {
					t.Errorf("the target's mode became %v", fi.Mode().Perm())
				}
			})
			t.Run("stdout", func(t *testing.T) {
				code, out, errOut := run(t, "/dev/stdout")
				if code != 0 {
					t.Fatalf("exit %d: %s", code, errOut)
				}
				if !isProfile(out) || !strings.Contains(out, "profile written to /dev/stdout") {
					t.Errorf("stdout lacks the profile or the report:\n%s", out)
				}
				if fi, err := os.Lstat("/dev/stdout"); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
					t.Errorf("/dev/stdout is now %v (%v)", fi.Mode(), err)
				}
			})
			if got := entriesOf(t, dir); len(got) != 5 {
				t.Errorf("left %v in %s, want the two nodes, the FIFO, the link and its target", got, dir)
			}
		})
	}
}

// TestOutputCheckedBeforeWindow: a path that cannot take the profile fails
// at once, in one line, not after a window of ten seconds.
func TestOutputCheckedBeforeWindow(t *testing.T) {
	cpuwhyBinary(t) // built before the clock starts
	idle := startProgram(t, "idle")
	pid := strconv.Itoa(idle.Process.Pid)
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(dir, "disk")
	if err := syscall.Mknod(disk, syscall.S_IFBLK|0o600, 7<<8); err != nil { // a loop device's numbers
		privtest.Require(t, "mknod: "+err.Error())
	}
	tests := []struct {
		out  string
		want string
	}{
		{"/nonexistent/dir/x.html", "no directory /nonexistent/dir"},
		{dir, "is a directory"},
		{filepath.Join(file, "x.html"), "not a directory"},
		{disk, "block device"},
		{"/proc/self/status", "cannot create a file beside"},
	}
	for _, cmd := range [][]string{{"record", "-d", "10s"}, {"-d", "10s"}} {
		for _, tt := range tests {
			args := append(append([]string{}, cmd...), "-o", tt.out, "--format", "html", pid)
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				cpuwhyBinary(t) // built before the clock starts
				start := time.Now()
				code, out, errOut := runBinary(t, nil, args...)
				if took := time.Since(start); took > 2*time.Second {
					t.Errorf("failed after %v: the window ran first", took)
				}
				if code != 2 || out != "" {
					t.Fatalf("exit %d, stdout %q, stderr %q; want exit 2", code, out, errOut)
				}
				assertOneLine(t, errOut, "-o "+tt.out+": ", tt.want)
			})
		}
	}
	if fi, err := os.Lstat(disk); err != nil || fi.Mode().Type() != fs.ModeDevice {
		t.Errorf("the block device is now %v (%v)", fi.Mode(), err)
	}
}

// mknodLike makes a character device node in dir with the numbers of the
// device at like.
func mknodLike(t *testing.T, dir, name, like string) string {
	t.Helper()
	fi, err := os.Stat(like)
	if err != nil || fi.Mode()&fs.ModeCharDevice == 0 {
		t.Fatalf("%s is not a character device: %v, %v", like, fi, err)
	}
	path := filepath.Join(dir, name)
	if err := syscall.Mknod(path, syscall.S_IFCHR|0o666, int(fi.Sys().(*syscall.Stat_t).Rdev)); err != nil {
		privtest.Require(t, "mknod: "+err.Error())
	}
	return path
}

// assertNode checks that path is still a character device with the
// numbers of like.
func assertNode(t *testing.T, path, like string) {
	t.Helper()
	fi, err := os.Lstat(path)
	li, lerr := os.Stat(like)
	if err != nil || lerr != nil {
		t.Fatal(err, lerr)
	}
	if fi.Mode()&fs.ModeCharDevice == 0 || fi.Sys().(*syscall.Stat_t).Rdev != li.Sys().(*syscall.Stat_t).Rdev {
		t.Errorf("%s is now %v, no longer a copy of %s", path, fi.Mode(), like)
	}
}

func entriesOf(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}
