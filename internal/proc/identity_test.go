package proc

import (
	"os"
	"strings"
	"testing"

	"github.com/prometheus/procfs"
)

func TestParseCmdline(t *testing.T) {
	for in, want := range map[string]string{
		"/usr/bin/python3\x00-m\x00http.server\x00": "/usr/bin/python3 -m http.server",
		"nginx: worker process\x00\x00\x00":         "nginx: worker process",
		"":                                          "",
		"a\x00\x00b":                                "a  b",
	} {
		if got := ParseCmdline([]byte(in)); got != want {
			t.Errorf("ParseCmdline(%q) = %q, want %q", in, got, want)
		}
	}
}

// Identity gives what prometheus/procfs, which it replaced, gave for
// every process of the host.
func TestIdentityAsProcfs(t *testing.T) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		t.Fatal(err)
	}
	procs, err := fs.AllProcs()
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, p := range procs {
		args, err1 := p.CmdLine()
		st, err2 := p.NewStatus()
		if err1 != nil || err2 != nil || len(st.NSpids) == 0 {
			continue // gone, or not ours to read
		}
		id := FS{}.Identity(p.PID)
		if id.Cmdline != strings.Join(args, " ") || id.NsPID != int(st.NSpids[len(st.NSpids)-1]) {
			// The process may have changed its arguments in between.
			if _, err := os.Stat(FS{}.PIDPath(p.PID)); err == nil {
				t.Errorf("PID %d: %+v, procfs %q %v", p.PID, id, args, st.NSpids)
			}
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("no process checked")
	}
}

func FuzzParseCmdline(f *testing.F) {
	f.Add([]byte("/bin/sh\x00-c\x00x\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if s := ParseCmdline(b); strings.ContainsRune(s, 0) || len(s) > len(b) {
			t.Errorf("ParseCmdline(%q) kept a NUL", b)
		}
	})
}
