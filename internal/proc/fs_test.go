package proc

import (
	"path/filepath"
	"strconv"
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
