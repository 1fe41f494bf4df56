package outfile_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/outfile"
	"github.com/cpuwhy/cpuwhy/test/privtest"
)

const payload = "main;spin 42\n"

func write(t *testing.T, path string, opts outfile.Options) error {
	t.Helper()
	f, err := outfile.Open(context.Background(), path, opts)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Write(func(w io.Writer) error {
		_, err := io.WriteString(w, payload)
		return err
	})
}

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// entries lists dir, to check that no temporary file is left behind.
func entries(t *testing.T, dir string) []string {
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

func TestRegularFiles(t *testing.T) {
	dir := t.TempDir()
	// A new file.
	newFile := filepath.Join(dir, "new.folded")
	if err := write(t, newFile, outfile.Options{}); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(newFile); fi.Mode() != 0o644 || readString(t, newFile) != payload {
		t.Errorf("new file: mode %v, %q", fi.Mode(), readString(t, newFile))
	}
	// An existing file keeps its permissions and gets the new bytes.
	old := filepath.Join(dir, "old.folded")
	if err := os.WriteFile(old, []byte("previous contents, longer than the new ones\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := write(t, old, outfile.Options{}); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(old); fi.Mode() != 0o600 || readString(t, old) != payload {
		t.Errorf("existing file: mode %v, %q", fi.Mode(), readString(t, old))
	}
	if got := entries(t, dir); len(got) != 2 {
		t.Errorf("left %v in %s, want the two files alone", got, dir)
	}
}

// TestSymlinks writes through links: the file they lead to gets the bytes
// (whole: it is renamed into place) and every link stays the link it was.
func TestSymlinks(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"real", "real/sub", "elsewhere"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mustLink := func(target, link string) {
		t.Helper()
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "real/target.html"), []byte("old"), 0o640); err != nil {
		t.Fatal(err)
	}
	mustLink("real/target.html", "rel.html")          // relative
	mustLink(filepath.Join(dir, "rel.html"), "chain") // absolute, to a link
	mustLink("real/new.html", "dangling.html")        // to nothing yet
	// A ".." in a link's target climbs from where the directory link
	// really leads (real/sub/..: real), not from where it sits.
	mustLink("real/sub", "subdir")
	if err := os.Symlink("../target.html", filepath.Join(dir, "real/sub/up.html")); err != nil {
		t.Fatal(err)
	}
	mustLink("loop2", "loop1")
	mustLink("loop1", "loop2")

	tests := []struct {
		link, target string
	}{
		{"rel.html", "real/target.html"},
		{"chain", "real/target.html"},
		{"dangling.html", "real/new.html"},
		{"subdir/up.html", "real/target.html"},
	}
	for _, tt := range tests {
		t.Run(tt.link, func(t *testing.T) {
			link := filepath.Join(dir, tt.link)
			before, _ := os.Readlink(link)
			if err := write(t, link, outfile.Options{}); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Lstat(link)
			if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
				t.Fatalf("%s is no longer a link: %v, %v", tt.link, fi, err)
			}
			if after, _ := os.Readlink(link); after != before {
				t.Errorf("link now leads to %q, was %q", after, before)
			}
			if got := readString(t, filepath.Join(dir, tt.target)); got != payload {
				t.Errorf("%s holds %q", tt.target, got)
			}
		})
	}
	if fi, _ := os.Stat(filepath.Join(dir, "real/target.html")); fi.Mode().Perm() != 0o640 {
		t.Errorf("target's mode became %v", fi.Mode().Perm())
	}
	for _, dir := range []string{dir, filepath.Join(dir, "real")} {
		for _, name := range entries(t, dir) {
			if strings.HasPrefix(name, ".") {
				t.Errorf("temporary %s left in %s", name, dir)
			}
		}
	}
	if err := write(t, filepath.Join(dir, "loop1"), outfile.Options{}); err == nil {
		t.Error("a loop of links was written")
	}
}

// TestProtectedSymlinks: in a sticky world-writable directory (/tmp), a
// link of another user is not followed, as the kernel would not follow it
// either; otherwise that user could aim root's -o at any file.
func TestProtectedSymlinks(t *testing.T) {
	if os.Geteuid() != 0 {
		privtest.Require(t, "needs root to make a link owned by another user")
	}
	shared := filepath.Join(t.TempDir(), "tmp")
	if err := os.Mkdir(shared, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o777|os.ModeSticky); err != nil { // past the umask
		t.Fatal(err)
	}
	victim := filepath.Join(t.TempDir(), "passwd")
	if err := os.WriteFile(victim, []byte("root:x:0:0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(shared, "x.html")
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(link, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	err := write(t, link, outfile.Options{})
	if !errors.Is(err, fs.ErrPermission) {
		t.Errorf("writing through another user's link in a sticky directory: %v, want a refusal", err)
	}
	if got := readString(t, victim); got != "root:x:0:0\n" {
		t.Errorf("the link's target was written: %q", got)
	}
	// The same link of our own user is followed.
	if err := os.Lchown(link, os.Geteuid(), os.Getegid()); err != nil {
		t.Fatal(err)
	}
	if err := write(t, link, outfile.Options{}); err != nil || readString(t, victim) != payload {
		t.Errorf("own link: %v, target holds %q", err, readString(t, victim))
	}
}

// mknod makes a device node in dir with the numbers of the device at
// like (a copy of /dev/null or /dev/full, or a block device).
func mknod(t *testing.T, dir, name, like string, mode uint32) string {
	t.Helper()
	fi, err := os.Stat(like)
	if err != nil {
		t.Skipf("no %s to copy: %v", like, err)
	}
	path := filepath.Join(dir, name)
	if err := syscall.Mknod(path, mode|0o666, int(fi.Sys().(*syscall.Stat_t).Rdev)); err != nil {
		privtest.Require(t, "mknod: "+err.Error())
	}
	return path
}

// sameNode checks that path is still the node it was made as.
func sameNode(t *testing.T, path string, mode fs.FileMode, rdev uint64) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != mode || fi.Sys().(*syscall.Stat_t).Rdev != rdev {
		t.Errorf("%s is now %v (rdev %d), was %v (rdev %d)", path, fi.Mode().Type(), fi.Sys().(*syscall.Stat_t).Rdev, mode, rdev)
	}
}

func rdevOf(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Rdev
}

func TestDevices(t *testing.T) {
	dir := t.TempDir()
	null := mknod(t, dir, "null", "/dev/null", syscall.S_IFCHR)
	full := mknod(t, dir, "full", "/dev/full", syscall.S_IFCHR)
	nullDev, fullDev := rdevOf(t, null), rdevOf(t, full)

	if err := write(t, null, outfile.Options{}); err != nil {
		t.Errorf("writing to a copy of /dev/null: %v", err)
	}
	sameNode(t, null, fs.ModeDevice|fs.ModeCharDevice, nullDev)

	// /dev/full opens, and refuses the bytes: the error says so, and
	// the node stays a device (it once became a 576-byte file).
	err := write(t, full, outfile.Options{})
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), full) {
		t.Errorf("writing to a copy of /dev/full: %v, want ENOSPC naming it", err)
	}
	sameNode(t, full, fs.ModeDevice|fs.ModeCharDevice, fullDev)

	// Through a link: the link stays, the device gets the bytes.
	link := filepath.Join(dir, "to-null")
	if err := os.Symlink("null", link); err != nil {
		t.Fatal(err)
	}
	if err := write(t, link, outfile.Options{}); err != nil {
		t.Error(err)
	}
	if fi, _ := os.Lstat(link); fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("the link to a device became %v", fi.Mode())
	}
	sameNode(t, null, fs.ModeDevice|fs.ModeCharDevice, nullDev)

	// A block device is refused at Open, before anything is written.
	disk := mknod(t, dir, "disk", "/dev/null", syscall.S_IFBLK)
	_, err = outfile.Open(context.Background(), disk, outfile.Options{})
	if !errors.Is(err, outfile.ErrNotFile) || !strings.Contains(err.Error(), "block device") {
		t.Errorf("Open(block device) = %v, want a refusal", err)
	}
	if got := entries(t, dir); len(got) != 4 {
		t.Errorf("left %v in %s", got, dir)
	}
}

func TestFIFO(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// A reader that comes after Open started waiting: Open waits for it
	// (as a shell's > does), says so once, and the bytes reach it.
	waited := 0
	got := make(chan string, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		b, _ := os.ReadFile(fifo)
		got <- string(b)
	}()
	f, err := outfile.Open(context.Background(), fifo, outfile.Options{Waiting: func() { waited++ }})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Write(func(w io.Writer) error { _, err := io.WriteString(w, payload); return err }); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != payload {
		t.Errorf("reader got %q", s)
	}
	if waited != 1 {
		t.Errorf("Waiting called %d times, want once", waited)
	}
	if fi, _ := os.Lstat(fifo); fi.Mode().Type() != fs.ModeNamedPipe {
		t.Errorf("the FIFO became %v", fi.Mode())
	}

	// No reader ever: the wait ends with the context.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := outfile.Open(ctx, fifo, outfile.Options{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Open(FIFO without reader) = %v, want the context's error", err)
	}
	if got := entries(t, dir); len(got) != 1 {
		t.Errorf("left %v in %s", got, dir)
	}
}

// TestStreams: a path that leads to one of the process's own streams is
// written through it, after what was written there, and leaves it open.
func TestStreams(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if _, err := io.WriteString(w, "report\n"); err != nil {
		t.Fatal(err)
	}
	path := "/proc/self/fd/" + strconv.Itoa(int(w.Fd()))
	if err := write(t, path, outfile.Options{Streams: []*os.File{os.Stderr, w}}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(w, "more\n"); err != nil {
		t.Errorf("the stream was closed: %v", err)
	}
	w.Close()
	b, _ := io.ReadAll(r)
	if string(b) != "report\n"+payload+"more\n" {
		t.Errorf("stream holds %q", b)
	}
}

func TestRefused(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		want error
	}{
		{dir, outfile.ErrNotFile},
		{sock, outfile.ErrNotFile},
		{filepath.Join(dir, "no/such/dir/x.html"), fs.ErrNotExist},
		{"/nonexistent/dir/x.html", fs.ErrNotExist},
		{filepath.Join(file, "x.html"), syscall.ENOTDIR},
		{"", fs.ErrInvalid},
		{"/proc/self/status", nil}, // any error: /proc takes no new files
	}
	for _, tt := range tests {
		_, err := outfile.Open(context.Background(), tt.path, outfile.Options{})
		if err == nil || tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("Open(%q) = %v, want %v", tt.path, err, tt.want)
		}
	}
	if fi, _ := os.Lstat(sock); fi.Mode().Type() != fs.ModeSocket {
		t.Errorf("the socket became %v", fi.Mode())
	}
}

// TestChangedDuringWindow: a regular file's path that becomes something
// else between Open and Write is not replaced.
func TestChangedDuringWindow(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.folded")
	f, err := outfile.Open(context.Background(), path, outfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	err = f.Write(func(w io.Writer) error { _, err := io.WriteString(w, payload); return err })
	if !errors.Is(err, outfile.ErrNotFile) {
		t.Errorf("Write over a FIFO made during the window: %v, want a refusal", err)
	}
	if fi, _ := os.Lstat(path); fi.Mode().Type() != fs.ModeNamedPipe {
		t.Errorf("the FIFO became %v", fi.Mode())
	}
}

// TestWriteError: a failing writer leaves an existing file as it was and
// no temporary behind.
func TestWriteError(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.html")
	if err := os.WriteFile(path, []byte("previous"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := outfile.Open(context.Background(), path, outfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := f.Write(func(w io.Writer) error { io.WriteString(w, "half"); return boom }); !errors.Is(err, boom) {
		t.Errorf("Write = %v, want the writer's error", err)
	}
	if got := readString(t, path); got != "previous" {
		t.Errorf("file holds %q after a failed write", got)
	}
	if got := entries(t, dir); len(got) != 1 {
		t.Errorf("left %v", got)
	}
	var nilFile *outfile.File
	if err := nilFile.Close(); err != nil {
		t.Errorf("nil Close: %v", err)
	}
}
