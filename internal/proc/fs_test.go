package proc

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestTaskPath(t *testing.T) {
	tests := []struct {
		root string
		pid  int
		tid  int
		elem []string
	}{
		{root: "", pid: 1, tid: 1, elem: []string{"stat"}},
		{root: "/proc", pid: 4677, tid: 4702, elem: []string{"syscall"}},
		{root: "/", pid: 12, tid: 13, elem: []string{"wchan"}},
		{root: "testdata/proc", pid: 2, tid: 3},
		{root: "/host/proc/", pid: 2, tid: 3, elem: []string{"stat"}},
		{root: "/proc", pid: 2, tid: 3, elem: []string{"fd", "1"}},
		{root: "/proc", pid: 2, tid: 3, elem: []string{"../4", "stat"}},
		{root: "/proc", pid: 2, tid: 3, elem: []string{"", ".", "stat"}},
		{root: "/a/../proc", pid: 2, tid: 3, elem: []string{"stat"}},
	}
	for _, tt := range tests {
		fs := FS{Root: tt.root}
		want := fs.Path(append([]string{strconv.Itoa(tt.pid), "task", strconv.Itoa(tt.tid)}, tt.elem...)...)
		if got := fs.TaskPath(tt.pid, tt.tid, tt.elem...); got != want {
			t.Errorf("FS{%q}.TaskPath(%d, %d, %q) = %q, want %q (filepath.Join)", tt.root, tt.pid, tt.tid, tt.elem, got, want)
		}
	}
	if got, want := (FS{}).TaskPath(7, 8, "stat"), filepath.Join(DefaultRoot, "7", "task", "8", "stat"); got != want {
		t.Errorf("default root: %q, want %q", got, want)
	}
}

func BenchmarkTaskPath(b *testing.B) {
	fs := FS{}
	b.ReportAllocs()
	for b.Loop() {
		_ = fs.TaskPath(123456, 123789, "syscall")
	}
}

func TestJoinCmdline(t *testing.T) {
	for in, want := range map[string]string{
		"":                      "",
		"\x00":                  "",
		"sleep\x00":             "sleep",
		"sleep\x0010\x00":       "sleep 10",
		"a b\x00c\x00\x00":      "a b c",
		"no terminator":         "no terminator",
		"nginx: master\x00\x00": "nginx: master",
	} {
		if got := JoinCmdline([]byte(in)); got != want {
			t.Errorf("JoinCmdline(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestIdentityOfSelf(t *testing.T) {
	id := FS{}.Identity(os.Getpid())
	if id.NsPID != os.Getpid() || !strings.HasPrefix(id.Cmdline, os.Args[0]) {
		t.Errorf("Identity of this process: %+v, want NsPID %d and a command line starting %q", id, os.Getpid(), os.Args[0])
	}
	if id := (FS{}).Identity(1 << 30); id.NsPID != 1<<30 || id.Cmdline != "" {
		t.Errorf("Identity of a missing process: %+v", id)
	}
}
