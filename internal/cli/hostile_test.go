package cli

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cpuwhy/cpuwhy/internal/escape"
	"github.com/cpuwhy/cpuwhy/internal/top"
	"github.com/cpuwhy/cpuwhy/test/scenario"
	"github.com/cpuwhy/cpuwhy/test/termtest"
)

// The hostile scenario's names (test/scenario/testdata/hostile/hostile.c).
const (
	hostileComm  = "\x1b]0;PWNED\a\nhx\xff"
	hostileHot   = "\x1b[2Jhot\nfake"
	hostileBidi  = "\u202etops\u009b\x7f"
	hostileBytes = "\xff\xfe\xc3(\t\r"
	hostileArgv  = "\x1b]0;ARGV\a \x1b[2J line\nforged: 99.9% of a core \xff\xfe \u202eevil \u009b31m"
	hostileMemfd = "/memfd:hostile\x1b]0;FD\a\nforged\xff (deleted)"
	// hostileBinary is the file the test runs it from. No newline: the
	// kernel writes one in /proc/PID/maps as \012, and the name there
	// would not be the file's.
	hostileBinary = "hostile\x1b]0;BIN\a\xff\u202e"
)

// hostileForged starts what a line would, were a name's newline written
// raw: the text after the newline in each name.
var hostileForged = []string{"hx", "fake", "forged"}

// startHostile starts the hostile scenario from a file whose name is
// hostile too (module names print in stacks).
func startHostile(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	p := scenario.Build(t, "hostile")
	data, err := os.ReadFile(p.Path)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p.Path = filepath.Join(dir, hostileBinary)
	if err := os.WriteFile(p.Path, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return p.Start(t, nil, args...)
}

// TestHostileNames runs every text command on a process whose names, argv,
// fds, symbols and binary are escape sequences, newlines and invalid UTF-8
// (issue 18): nothing may reach the terminal raw, and no name may forge a
// line; JSON keeps the names exactly.
func TestHostileNames(t *testing.T) {
	cmd := startHostile(t)
	pid := strconv.Itoa(cmd.Process.Pid)
	folded := filepath.Join(t.TempDir(), "out.folded")
	tests := []struct {
		name string
		args []string
		want []string // raw names that must be shown, escaped
	}{
		{"top", []string{"top", "-b", "-n", "1", "-d", "0.5", "-w", "0"}, []string{hostileArgv}},
		{"top -H", []string{"top", "-H", "-b", "-n", "1", "-d", "0.5", "-w", "0"}, []string{hostileHot, hostileBidi, hostileBytes}},
		{"top PID", []string{"top", "-b", "-n", "1", "-d", "0.5", pid}, []string{hostileComm, hostileHot}},
		{"diagnosis", []string{"-d", "2s", pid}, []string{hostileComm, hostileHot}},
		{"dump", []string{"dump", pid}, []string{hostileComm, hostileHot, hostileBidi, hostileBytes}},
		{"syscalls", []string{"syscalls", "-d", "1s", pid}, []string{hostileComm, hostileHot, hostileMemfd}},
		{"record", []string{"record", "-d", "2s", "-o", folded, pid}, []string{hostileComm, scenario.HostileSymbol, hostileBinary}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runBinary(t, nil, tt.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, escape.String(errOut))
			}
			termtest.Check(t, "stdout", out, hostileForged...)
			termtest.Check(t, "stderr", errOut, hostileForged...)
			for _, w := range tt.want {
				if !strings.Contains(out, escape.String(w)) {
					t.Errorf("output lacks %s:\n%s", escape.String(w), out)
				}
			}
		})
	}
	t.Run("record folded", func(t *testing.T) {
		data, err := os.ReadFile(folded)
		if err != nil {
			t.Skipf("no folded profile: %v", err)
		}
		termtest.Check(t, "folded", string(data), hostileForged...)
		for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
			if i := strings.LastIndexByte(line, ' '); i < 0 || strings.Trim(line[i+1:], "0123456789") != "" {
				t.Errorf("folded line %q does not end in a count: a name split it", line)
			}
		}
	})
	t.Run("JSON is exact", func(t *testing.T) {
		code, out, errOut := runBinary(t, nil, "top", "--json", "-d", "0.5", pid)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, escape.String(errOut))
		}
		termtest.Check(t, "JSON", out)
		p := findProcess(frames(t, out)[0], cmd.Process.Pid)
		if p == nil {
			t.Fatalf("no process %s in %s", pid, out)
		}
		// JSON strings are UTF-8: encoding/json writes each invalid byte
		// as U+FFFD. Everything else is the target's bytes.
		if want := viaJSON(t, hostileArgv); p.Cmdline != want {
			t.Errorf("cmdline %q, want %q", p.Cmdline, want)
		}
		if want := viaJSON(t, hostileComm); p.Name != want {
			t.Errorf("name %q, want %q", p.Name, want)
		}
		for _, name := range []string{hostileHot, hostileBidi} {
			if findThread(p, name) == nil {
				t.Errorf("no thread named exactly %q among %v", name, threadNames(p))
			}
		}
	})
	t.Run("ambiguous name", func(t *testing.T) {
		other := startHostile(t, "idle")
		code, out, errOut := runBinary(t, nil, "dump", "--name", "PWNED")
		if code != 1 {
			t.Fatalf("exit %d, want 1; stderr %s", code, escape.String(errOut))
		}
		assertOneLine(t, errOut, pid+" ("+escape.String(hostileComm)+")", strconv.Itoa(other.Process.Pid)+" (")
		termtest.Check(t, "stderr", errOut, hostileForged...)
		if out != "" {
			t.Errorf("stdout %q, want nothing", out)
		}
	})
}

func threadNames(p *top.Process) []string {
	var names []string
	for _, t := range p.Threads {
		names = append(names, t.Name)
	}
	return names
}

// viaJSON is s as encoding/json carries it.
func viaJSON(t *testing.T, s string) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back string
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	return back
}
