package sys

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cpuwhy/cpuwhy/test/privtest"
)

// hostileRoot makes a root whose links try to leave it. The host file they
// aim at holds a marker that must never be read through the root.
func hostileRoot(t *testing.T) (root, hostFile string) {
	t.Helper()
	base := t.TempDir()
	hostFile = filepath.Join(base, "host-secret")
	if err := os.WriteFile(hostFile, []byte("HOST-SECRET"), 0o644); err != nil {
		t.Fatal(err)
	}
	root = filepath.Join(base, "a", "b", "root")
	for _, d := range []string{"lib", "etc", "usr/lib"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"etc/passwd":      "root-passwd",
		"usr/lib/libc.so": "root-libc",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"lib/evil.so":      hostFile,               // absolute, to a host path the root lacks
		"lib/passwd.so":    "/etc/passwd",          // absolute, to a path both have
		"lib/up.so":        "../../../host-secret", // relative escape
		"lib/libc.so":      "/usr/lib/libc.so",     // legitimate absolute link
		"lib/proc.so":      "/proc/self/root" + hostFile,
		"lib/loop.so":      "loop2.so",
		"lib/loop2.so":     "loop.so",
		"lib/dotdot.so":    "../../../../../../../../etc/passwd",
		"lib/fifo-link.so": "/fifo",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root, hostFile
}

func TestOpenInRoot(t *testing.T) {
	root, hostFile := hostileRoot(t)
	tests := []struct {
		path string
		want string // content, or "" when the open must fail
	}{
		{"/usr/lib/libc.so", "root-libc"},
		{"/lib/libc.so", "root-libc"},
		{"lib/libc.so", "root-libc"},
		{"/lib/passwd.so", "root-passwd"},       // the root's passwd, not the host's
		{"/lib/dotdot.so", "root-passwd"},       // ".." stops at the root
		{"/../../../etc/passwd", "root-passwd"}, // in the path itself too
		{"/lib/evil.so", ""},                    // the host path does not exist in the root
		{"/lib/up.so", ""},                      // nor does the escape's target
		{hostFile, ""},                          // an absolute host path is a root path
		{"/lib/proc.so", ""},                    // no /proc in the root
		{"/lib/loop.so", ""},                    // ELOOP
		{"/fifo", ""},                           // not a regular file
		{"/lib/fifo-link.so", ""},
		{"/etc", ""}, // a directory
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			f, err := OpenInRoot(root, tt.path)
			if errors.Is(err, ErrNotSupported) {
				privtest.Require(t, err.Error())
			}
			if tt.want == "" {
				if err == nil {
					b, _ := io.ReadAll(f)
					f.Close()
					t.Fatalf("opened, read %q; want an error", b)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			b, err := io.ReadAll(f)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(b), "HOST-SECRET") || string(b) != tt.want {
				t.Errorf("read %q, want %q", b, tt.want)
			}
		})
	}
}

// TestOpenInRootMagicLink checks that /proc's magic links, which point
// outside any root, are refused even when the root has them: a target's
// /proc/PID/root/proc is its own proc mount.
func TestOpenInRootMagicLink(t *testing.T) {
	_, err := OpenInRoot("/", "/proc/self/exe")
	if errors.Is(err, ErrNotSupported) {
		privtest.Require(t, err.Error())
	}
	if !errors.Is(err, unix.ELOOP) && !errors.Is(err, unix.EXDEV) {
		t.Errorf("opening a magic link: %v, want ELOOP or EXDEV", err)
	}
}

func TestOpenInRootMissingRoot(t *testing.T) {
	if _, err := OpenInRoot(filepath.Join(t.TempDir(), "none"), "/x"); !errors.Is(err, unix.ENOENT) {
		t.Errorf("err = %v, want ENOENT", err)
	}
}
