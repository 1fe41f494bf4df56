// Package browsertest renders pages in a real headless Chromium for tests,
// so that a page's script runs, draws and searches as in a user's browser:
// the DOM it built comes back as text, and a screenshot as a decoded
// image that a test can examine pixel by pixel.
//
// A test cannot judge how a page looks; a person can. When the
// environment variable CPUWHY_SCREENSHOT_DIR names a directory,
// screenshots are written there under the name the test gives (and kept),
// instead of in the test's temporary directory.
//
// Without Chromium installed the test is skipped through privtest, or
// failed when CPUWHY_REQUIRE_PRIVILEGED=1 (as in CI, which installs it).
// It is imported by tests only.
package browsertest

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/test/privtest"
)

// EnvScreenshotDir is the environment variable naming a directory where
// screenshots are kept for a person to look at.
const EnvScreenshotDir = "CPUWHY_SCREENSHOT_DIR"

// Window is the size of the browser window, and of its screenshots.
var Window = image.Pt(1200, 800)

// Chromium returns the path of a headless-capable Chromium, or skips the
// test (fails it under CPUWHY_REQUIRE_PRIVILEGED=1) when none is
// installed.
func Chromium(tb testing.TB) string {
	tb.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	privtest.Require(tb, "no chromium to render pages with (apt-get install chromium)")
	return ""
}

// Run runs Chromium headless on url with extra arguments and returns its
// standard output. The profile directory is the test's own, and every
// feature that would reach the network on its own is off: the pages under
// test must work offline.
func Run(tb testing.TB, bin, url string, args ...string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args = append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + tb.TempDir(), fmt.Sprintf("--window-size=%d,%d", Window.X, Window.Y),
	}, append(args, url)...)
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("chromium %v: %v\n%s", args, err, stderr.Bytes())
	}
	return stdout.String()
}

// DumpDOM returns the DOM of the page at url once its scripts have run.
func DumpDOM(tb testing.TB, bin, url string) string {
	tb.Helper()
	return Run(tb, bin, url, "--dump-dom")
}

// Screenshot renders the page at url into a PNG named name, in
// CPUWHY_SCREENSHOT_DIR when set (for a person to look at) or else in the
// test's temporary directory, and returns the decoded image and the file's
// path. It fails the test unless the file is a PNG of the window's size.
func Screenshot(tb testing.TB, bin, url, name string) (image.Image, string) {
	tb.Helper()
	dir := os.Getenv(EnvScreenshotDir)
	kept := dir != ""
	if !kept {
		dir = tb.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatalf("%s: %v", EnvScreenshotDir, err)
	}
	path, err := filepath.Abs(filepath.Join(dir, name))
	if err != nil {
		tb.Fatal(err)
	}
	Run(tb, bin, url, "--screenshot="+path)
	f, err := os.Open(path)
	if err != nil {
		tb.Fatalf("chromium wrote no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		tb.Fatalf("screenshot %s: %v", path, err)
	}
	if size := img.Bounds().Size(); size != Window {
		tb.Fatalf("screenshot %s is %v, want the window's %v", path, size, Window)
	}
	if kept {
		tb.Logf("screenshot kept at %s", path)
	}
	return img, path
}

// HSL returns the hue (degrees, 0 to 360), saturation and lightness (0 to
// 1) of c, the terms in which pages (and the flame graph's palette) give
// their colours.
func HSL(c color.Color) (h, s, l float64) {
	r16, g16, b16, _ := c.RGBA()
	r, g, b := float64(r16)/0xffff, float64(g16)/0xffff, float64(b16)/0xffff
	hi, lo := max(r, g, b), min(r, g, b)
	l = (hi + lo) / 2
	if hi == lo {
		return 0, 0, l
	}
	d := hi - lo
	if l > 0.5 {
		s = d / (2 - hi - lo)
	} else {
		s = d / (hi + lo)
	}
	switch hi {
	case r:
		h = (g - b) / d
		if g < b {
			h += 6
		}
	case g:
		h = (b-r)/d + 2
	default:
		h = (r-g)/d + 4
	}
	return h * 60, s, l
}

// Count returns how many pixels of img match.
func Count(img image.Image, match func(color.Color) bool) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if match(img.At(x, y)) {
				n++
			}
		}
	}
	return n
}

// Colors returns how many distinct colours img has; one means a blank
// page.
func Colors(img image.Image) int {
	seen := make(map[color.RGBA64]bool)
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			seen[color.RGBA64Model.Convert(img.At(x, y)).(color.RGBA64)] = true
		}
	}
	return len(seen)
}
