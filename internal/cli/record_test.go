package cli

import (
	"errors"
	"image/color"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/cpuwhy/cpuwhy/test/browsertest"
	"github.com/cpuwhy/cpuwhy/test/containertest"
	"github.com/cpuwhy/cpuwhy/test/privtest"
	"github.com/cpuwhy/cpuwhy/test/scenario"
)

func TestRecordContainer(t *testing.T) {
	c := startBusyPoll(t)
	dir := t.TempDir()
	for _, name := range []string{"vpn.pb.gz", "vpn.folded", "vpn.html"} {
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(dir, name)
			code, stdout, errOut := run(t, "record", "-d", "1s", "-o", out, "--container", c.Name,
				"--docker-data-root", c.DataRoot, "--docker-socket", "/nonexistent")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			for _, want := range []string{"in docker container " + c.Name, "RecvFrom <- vpnserver+0x", "start_thread", "Without symbols", "profile written to " + out} {
				if !strings.Contains(stdout, want) {
					t.Errorf("summary lacks %q:\n%s", want, stdout)
				}
			}
			data, err := os.ReadFile(out)
			if err != nil || len(data) == 0 {
				t.Fatalf("profile %s: %v", out, err)
			}
			switch filepath.Ext(name) {
			case ".gz":
				top, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=10", out).CombinedOutput()
				if err != nil || !strings.Contains(string(top), "recvfrom") {
					t.Errorf("go tool pprof -top: %v\n%s", err, top)
				}
			case ".folded":
				if !strings.Contains(string(data), ";RecvFrom;recvfrom") {
					t.Errorf("folded stacks lack ...;RecvFrom;recvfrom:\n%.500s", data)
				}
			case ".html":
				if !strings.Contains(string(data), "RecvFrom") || strings.Contains(string(data), "http://") || strings.Contains(string(data), "https://") {
					t.Errorf("html profile lacks RecvFrom or refers to the network")
				}
			}
		})
	}
}

// hottestFunction is the first row of the summary's function table:
// self share, name and module.
var hottestFunction = regexp.MustCompile(`SELF   TOTAL  FUNCTION \(MODULE\)\n *([0-9.]+)% +[0-9.]+%  (.+)\n`)

var unwoundShare = regexp.MustCompile(`(\d+)% of them unwound to their thread's start`)

// TestRecordScenarios records a C++ program and a stripped Go program,
// each in a container at a path the host does not have
// (/opt/<name>/<name>), and checks that the summary, the folded stacks
// and the pprof profile (read back by pprof's own parser and by `go tool
// pprof`) name the hot function as its developer knows it, demangled, on
// a stack unwound to the thread's start, with the thread's name.
func TestRecordScenarios(t *testing.T) {
	tests := []struct {
		scenario string
		function string // the hot function, named as in its language
		thread   string // the hot thread's name
		// The folded stack of the hot thread, outermost frames after the
		// thread's root first: unwound to its start.
		folded string
	}{
		// g++ -O2 -g: .symtab holds _ZN3vpn7Session4pumpEv.
		{"cxxhot", "vpn::Session::pump", "pump", ";__clone3;start_thread;run;vpn::Session::pump "},
		// -ldflags="-s -w": no .symtab, no DWARF, only the pclntab; the
		// locked thread keeps the process's name.
		{"gostripped", "main.spin", "gostripped", ";runtime.goexit;main.main.func1;main.spin "},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			prog := scenario.Build(t, tt.scenario)
			c := containertest.Start(t, containertest.Config{Program: prog.Path, Files: prog.Files})
			c.WaitReady(t, 10*time.Second)
			if _, err := os.Stat(c.Path); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("the host has the container's program path %s (%v): the test would not show that record reads it through the container", c.Path, err)
			}
			dir := t.TempDir()
			record := func(file string) (stdout string, data []byte) {
				t.Helper()
				out := filepath.Join(dir, file)
				code, stdout, errOut := run(t, "record", "-d", "1s", "-o", out, "--container", c.Name,
					"--docker-data-root", c.DataRoot, "--docker-socket", "/nonexistent")
				if code != 0 {
					t.Fatalf("record -o %s: exit %d: %s", file, code, errOut)
				}
				data, err := os.ReadFile(out)
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(stdout, "_Z") {
					t.Errorf("record -o %s: a name in the summary is left mangled (_Z…):\n%s", file, stdout)
				}
				return stdout, data
			}

			summary, data := record("x.pb.gz")
			for _, want := range []string{
				"(" + tt.scenario + ") in docker container " + c.Name + " as PID 1",
				"  " + tt.thread + "-",
			} {
				if !strings.Contains(summary, want) {
					t.Errorf("summary lacks %q:\n%s", want, summary)
				}
			}
			// The hottest function has nearly all the self time (the
			// odd sample may land in the kernel).
			if m := hottestFunction.FindStringSubmatch(summary); m == nil || m[2] != tt.function+" ("+tt.scenario+")" {
				t.Errorf("the hottest function is not %s (%s):\n%s", tt.function, tt.scenario, summary)
			} else if self, _ := strconv.ParseFloat(m[1], 64); self < 90 {
				t.Errorf("%s has %.1f%% of the self time, want nearly all:\n%s", tt.function, self, summary)
			}
			// A stack walked to the thread's start: nearly all of them (a
			// sample may land where no frame information is).
			if m := unwoundShare.FindStringSubmatch(summary); m == nil {
				t.Errorf("summary does not say how many stacks were unwound:\n%s", summary)
			} else if pct, _ := strconv.Atoi(m[1]); pct < 90 {
				t.Errorf("%d%% of the stacks unwound to their thread's start, want nearly all:\n%s", pct, summary)
			}

			p, err := profile.ParseData(data)
			if err != nil {
				t.Fatalf("parsing the pprof profile: %v", err)
			}
			for _, f := range p.Function {
				if strings.HasPrefix(f.Name, "_Z") {
					t.Errorf("pprof profile: function %s is left mangled", f.Name)
				}
			}
			var hot, all int64
			for _, s := range p.Sample {
				all += s.Value[0]
				if len(s.Location) == 0 || len(s.Location[0].Line) == 0 || s.Location[0].Line[0].Function.Name != tt.function {
					continue
				}
				hot += s.Value[0]
				if got := s.Label["thread"]; len(got) != 1 || got[0] != tt.thread {
					t.Errorf("a sample in %s has thread label %q, want %q", tt.function, got, tt.thread)
				}
			}
			// The hot thread spins all the time; the others sleep.
			if all == 0 || hot < all*9/10 {
				t.Errorf("%d of %d samples of the pprof profile are in %s, want nearly all", hot, all, tt.function)
			}
			top, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=5", filepath.Join(dir, "x.pb.gz")).CombinedOutput()
			if err != nil {
				t.Fatalf("go tool pprof -top: %v\n%s", err, top)
			}
			// The first row of the table is the hottest function by flat time.
			_, table, _ := strings.Cut(string(top), "flat  flat%")
			rows := strings.Split(strings.TrimSpace(table), "\n")
			if len(rows) < 2 || !strings.HasSuffix(rows[1], " "+tt.function) {
				t.Errorf("go tool pprof -top does not put %s first:\n%s", tt.function, top)
			}

			_, folded := record("x.folded")
			if strings.Contains(string(folded), "_Z") {
				t.Errorf("folded stacks: a name is left mangled (_Z…):\n%s", folded)
			}
			var found bool
			for _, line := range strings.Split(string(folded), "\n") {
				if strings.HasPrefix(line, tt.thread+"-") && strings.Contains(line, tt.folded) {
					found = true
				}
			}
			if !found {
				t.Errorf("no folded stack %s-TID%s…:\n%s", tt.thread, tt.folded, folded)
			}
		})
	}
}

// TestRecordPerfMap records JIT code in containers through the command:
// a hand-made JIT and node, each PID 1 of its container. The jitmap
// writes /tmp/perf-1.map there: the command links the perf map runtime
// in and finds the map under the PID the container gives the process;
// the hottest function is the JIT's, named from the map. node's hottest
// function is named from V8's own objects (package nodev8), with the
// flag that writes the map (V8's names come first) and without.
func TestRecordPerfMap(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skipf("unwinding is implemented for amd64 only, not %s", runtime.GOARCH)
	}
	node := func(flags ...string) func(t *testing.T) containertest.Config {
		return func(t *testing.T) containertest.Config {
			node, err := exec.LookPath("node")
			if err != nil {
				privtest.Require(t, "node is not installed (apt-get install nodejs)")
			}
			script, err := filepath.Abs("../stack/perfmap/testdata/hot.js")
			if err != nil {
				t.Fatal(err)
			}
			return containertest.Config{Program: node, Files: map[string]string{"hot.js": script},
				Args: append(flags, "/opt/node/hot.js")}
		}
	}
	tests := []struct {
		name   string
		config func(t *testing.T) containertest.Config
		// The hottest function and its module.
		function *regexp.Regexp
		folded   string // the folded stacks' innermost frame begins so
	}{
		{"jitmap", func(t *testing.T) containertest.Config {
			prog := scenario.Build(t, "jitmap")
			return containertest.Config{Program: prog.Path, Files: prog.Files}
		}, regexp.MustCompile(`^jit_first \(\[anon\]\)$`), ";jit_first "},
		{"node", node("--perf-basic-prof"), regexp.MustCompile(`^hotLoop \(hot\.js:5\) \(\[anon\]\)$`), ";hotLoop (hot.js:5)"},
		{"node without flags", node(), regexp.MustCompile(`^hotLoop \(hot\.js:5\) \(\[anon\]\)$`), ";hotLoop (hot.js:5)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := containertest.Start(t, tt.config(t))
			c.WaitReady(t, 20*time.Second)
			time.Sleep(time.Second) // node compiles hotLoop
			out := filepath.Join(t.TempDir(), "jit.folded")
			code, stdout, errOut := run(t, "record", "-d", "1s", "-o", out, "--container", c.Name,
				"--docker-data-root", c.DataRoot, "--docker-socket", "/nonexistent")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if m := hottestFunction.FindStringSubmatch(stdout); m == nil || !tt.function.MatchString(m[2]) {
				t.Errorf("the hottest function is not %s:\n%s", tt.function, stdout)
			} else if self, _ := strconv.ParseFloat(m[1], 64); self < 90 {
				t.Errorf("%s has %.1f%% of the self time, want nearly all:\n%s", tt.function, self, stdout)
			}
			if strings.Contains(stdout, "perf map") {
				t.Errorf("a note about the perf map:\n%s", stdout)
			}
			folded, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(folded), tt.folded) {
				t.Errorf("no folded stack has %q:\n%.2000s", tt.folded, folded)
			}
		})
	}
}

func TestRecordBadOutput(t *testing.T) {
	code, _, errOut := run(t, "record", "1", "-o", "profile.txt")
	if code != 2 || !strings.Contains(errOut, ".pb.gz") {
		t.Errorf("exit %d, stderr %q: want a usage error naming the formats", code, errOut)
	}
}

// The flame graph's palette (flame.html.tmpl's color()): kernel frames
// hsl(22-33, 85%, 60-65.5%), user code hsl(70-290, 50%, 62-73%) by module.
// Text and antialiased edges blend into other colours, so the bounds are a
// little wider than the palette's.
func kernelPixel(c color.Color) bool {
	h, s, l := browsertest.HSL(c)
	return h >= 20 && h <= 35 && s >= 0.75 && s <= 0.95 && l >= 0.57 && l <= 0.68
}

func userPixel(c color.Color) bool {
	h, s, l := browsertest.HSL(c)
	return h >= 68 && h <= 292 && s >= 0.42 && s <= 0.58 && l >= 0.6 && l <= 0.75
}

// TestRecordHTMLInChromium records the seed's scenario in its container
// into an HTML flame graph and renders it in headless Chromium: the page's
// script must draw the named frames, and the screenshot must show them in
// the graph's palette. With CPUWHY_SCREENSHOT_DIR set the screenshot is
// kept there (record-flame.png) for a person to look at.
func TestRecordHTMLInChromium(t *testing.T) {
	bin := browsertest.Chromium(t)
	c := startBusyPoll(t)
	page := filepath.Join(t.TempDir(), "vpn.html")
	code, _, errOut := run(t, "record", "-d", "1s", "-o", page, "--container", c.Name,
		"--docker-data-root", c.DataRoot, "--docker-socket", "/nonexistent")
	if code != 0 {
		t.Fatalf("record: exit %d: %s", code, errOut)
	}
	url := "file://" + page

	dom := browsertest.DumpDOM(t, bin, url)
	boxes := regexp.MustCompile(`<div class="f[^"]*" data-frame="\d+"[^>]*>([^<]*)</div>`).FindAllStringSubmatch(dom, -1)
	drawn := make(map[string]bool, len(boxes))
	for _, b := range boxes {
		drawn[b[1]] = true
	}
	// The seed's stack, from the kernel's receive path to the thread's
	// start, with the stripped binary's frame named by module and offset.
	for _, want := range []string{"__x64_sys_recvfrom", "recvfrom", "RecvFrom", "start_thread", "__clone3"} {
		if !drawn[want] {
			t.Errorf("the page drew no box named %s", want)
		}
	}
	var thread, unsymbolized bool
	for name := range drawn {
		thread = thread || strings.HasPrefix(name, "NatThreadMain-")
		unsymbolized = unsymbolized || strings.HasPrefix(name, "vpnserver+0x")
	}
	if !thread || !unsymbolized {
		t.Errorf("the page drew no NatThreadMain-TID box (%v) or no vpnserver+0x… box (%v); drew %v", thread, unsymbolized, drawn)
	}
	if !strings.Contains(dom, "container docker:"+c.Name+" ") {
		t.Errorf("the page does not name the container %s", c.Name)
	}

	img, shot := browsertest.Screenshot(t, bin, url, "record-flame.png")
	if n := browsertest.Colors(img); n < 16 {
		t.Fatalf("screenshot %s has %d colours: nothing drawn", shot, n)
	}
	// Most of busypoll's time is in the kernel's recvfrom: rows of orange
	// boxes, far more than the legend's swatch (12×12 px); its user frames
	// (libc, libnat) draw rows of their own colours.
	kernel, user := browsertest.Count(img, kernelPixel), browsertest.Count(img, userPixel)
	t.Logf("screenshot %s: %d colours, %d kernel-orange and %d user-coloured pixels", shot, browsertest.Colors(img), kernel, user)
	if kernel < 10000 {
		t.Errorf("screenshot %s has %d pixels of the kernel's orange, want the rows of the recvfrom path", shot, kernel)
	}
	if user < 5000 {
		t.Errorf("screenshot %s has %d pixels of user code's colours, want the rows of recvfrom, RecvFrom and start_thread", shot, user)
	}
}

// TestRecordProgress: on a terminal, record says what it records and
// counts the seconds on stderr, and its summary starts on a line of its
// own however the recording ends; through a pipe it prints no progress.
func TestRecordProgress(t *testing.T) {
	pid := strconv.Itoa(startProgram(t, "compute").Process.Pid)
	header := "cpuwhy: recording " + pid + " (compute) for "
	profile := filepath.Join(t.TempDir(), "compute.pb.gz")
	tests := []struct {
		name      string
		duration  string
		interrupt bool // Ctrl-C after the first tick
	}{
		{"to the end", "2s", false},
		{"interrupted", "20s", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// sleep keeps the pane, and its last screen, after cpuwhy exits.
			tm := newTmux(t, cpuwhyBinary(t)+" record -d "+tt.duration+" -o "+profile+" "+pid+"; sleep 60")
			tm.waitFor("the header and the first second counted", func(s string) bool {
				return strings.Contains(s, header+tt.duration+" into "+profile+" (Ctrl-C to stop early)\n") &&
					strings.Contains(s, "    1s / "+tt.duration)
			})
			if tt.interrupt {
				tm.keys("C-c")
			}
			s := tm.waitFor("the summary", func(s string) bool { return strings.Contains(s, "Hottest stacks") })
			var summary bool
			for _, line := range strings.Split(s, "\n") {
				summary = summary || strings.HasPrefix(line, "cpuwhy record: "+pid+" (compute), ")
			}
			if !summary {
				t.Errorf("the summary does not start on a line of its own:\n%s", s)
			}
			if tt.interrupt && !strings.Contains(s, "note: stopped: interrupt signal received") {
				t.Errorf("the summary of an interrupted recording does not say so:\n%s", s)
			}
		})
	}
	t.Run("pipe", func(t *testing.T) {
		code, out, errOut := runBinary(t, nil, "record", "-d", "1s", "-o", profile, pid)
		if code != 0 || !strings.Contains(out, "cpuwhy record: "+pid) {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
		}
		if errOut != "" {
			t.Errorf("stderr %q, want no progress on a pipe", errOut)
		}
	})
}

// rawFigure is a number a person would not read: four or more decimals,
// as time.Duration prints a period of 1/99 s or a timer's window.
var rawFigure = regexp.MustCompile(`\d\.\d{4,}`)

// TestRecordDefaultOutput: without -o, record writes cpuwhy.pb.gz where it
// runs (keeping the last one as cpuwhy.pb.gz.old, as perf keeps
// perf.data.old), says so, and prints no raw figure; where it cannot
// write, it refuses before the window, in one line naming -o.
func TestRecordDefaultOutput(t *testing.T) {
	pid := strconv.Itoa(startProgram(t, "compute").Process.Pid)
	dir := t.TempDir()
	previous := filepath.Join(dir, "cpuwhy.pb.gz")
	if err := os.WriteFile(previous, []byte("last recording"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runBinaryIn(t, dir, nil, "record", "-d", "1s", pid)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "profile written to cpuwhy.pb.gz (no -o given)") {
		t.Errorf("the summary does not name the default file:\n%s", out)
	}
	if raw := rawFigure.FindAllString(out, -1); raw != nil {
		t.Errorf("the summary has unrounded figures %q:\n%s", raw, out)
	}
	f, err := os.Open(previous)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		t.Fatalf("cpuwhy.pb.gz is not a pprof profile: %v", err)
	}
	if len(p.Sample) == 0 {
		t.Errorf("cpuwhy.pb.gz holds no samples of a busy program")
	}
	if old, err := os.ReadFile(previous + ".old"); err != nil || string(old) != "last recording" {
		t.Errorf("the previous profile was not kept as cpuwhy.pb.gz.old: %q, %v", old, err)
	}

	t.Run("unwritable directory", func(t *testing.T) {
		// Nobody, root included, creates files in /proc.
		cpuwhyBinary(t) // built before the clock starts
		start := time.Now()
		code, _, errOut := runBinaryIn(t, "/proc", nil, "record", "-d", "30s", pid)
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		assertOneLine(t, errOut, "cannot write the default profile cpuwhy.pb.gz in /proc", "give -o FILE")
		// Well under the window: refused before recording, not after.
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("refused after %v, want before the 30 s window", d)
		}
	})
}
