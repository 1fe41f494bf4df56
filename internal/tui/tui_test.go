package tui

import (
	"strings"
	"testing"

	tea "charm.land/bubbletea/v2"

	"github.com/cpuwhy/cpuwhy/internal/container"
	"github.com/cpuwhy/cpuwhy/internal/top"
	"github.com/cpuwhy/cpuwhy/test/termtest"
)

// TestKeysInOneRead covers keys that reach the program in one terminal read,
// which bubbletea delivers as one message of several runes: a CI run typed
// "/compute" into tmux and the view took it as one unknown key, so the
// filter never opened.
func TestKeysInOneRead(t *testing.T) {
	runes := func(s string) tea.KeyPressMsg { return tea.KeyPressMsg{Code: []rune(s)[0], Text: s} }
	tests := []struct {
		name   string
		msgs   []tea.KeyPressMsg
		typing bool
		filter string
		sort   top.SortKey
	}{
		{"slash and text together", []tea.KeyPressMsg{runes("/compute")}, true, "compute", top.SortCPU},
		{"slash, text, enter", []tea.KeyPressMsg{runes("/comp"), runes("ute"), {Code: tea.KeyEnter}}, false, "compute", top.SortCPU},
		{"one key at a time", []tea.KeyPressMsg{runes("/"), runes("c"), runes("u")}, true, "cu", top.SortCPU},
		{"sort keys together", []tea.KeyPressMsg{runes("pm")}, false, "", top.SortMem},
		{"sort then filter", []tea.KeyPressMsg{runes("t/x")}, true, "x", top.SortThreads},
		{"escape drops the filter", []tea.KeyPressMsg{runes("/ab"), {Code: tea.KeyEscape}}, false, "", top.SortCPU},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &model{sort: top.SortCPU}
			for _, k := range tt.msgs {
				m.Update(k)
			}
			if m.typing != tt.typing || m.filter != tt.filter || m.sort != tt.sort {
				t.Errorf("typing %v, filter %q, sort %v; want %v, %q, %v", m.typing, m.filter, m.sort, tt.typing, tt.filter, tt.sort)
			}
		})
	}
}

// TestRenderEscapesNames draws the process table and the thread view of a
// process whose names attack the terminal (issue 18): bubbletea writes
// the lines as they are, so the view must escape what the process chose.
func TestRenderEscapesNames(t *testing.T) {
	const comm = "\x1b]0;PWNED\a\nhx\xff"
	frame := &top.Frame{Processes: []top.Process{{
		PID: 42, NsPID: 1, Name: comm, Cmdline: "\x1b[2J line\nforged \xff\xfe \u202eevil \u009b31m", State: "R",
		CPU: 50, NumThreads: 2,
		Container: &container.Info{Runtime: container.Docker, ID: "abc", Name: "c\x1b[31m\nforged"},
		Threads: []top.Thread{
			{TID: 42, Name: comm, State: "S", Syscall: "futex"},
			{TID: 43, Name: "\x1b[2Jhot\nfake", CPU: 50, State: "R"},
			{TID: 44, Name: "\u202etops\u009b\x7f", State: "S", Wchan: "do_sys_poll"},
		},
	}}}
	keep := func(*top.Process) bool { return true }
	tests := []struct {
		name  string
		model *model
		lines int // header, column titles, rows, key help
		want  []string
	}{
		{"processes", &model{opts: Options{Keep: keep}, frame: frame, width: 300, height: 20, filter: "\x1b", typing: true}, 4,
			[]string{`\x1b[2J line\nforged \xff\xfe \u202eevil \u009b31m`, `docker:c\x1b[31m\nforged`, `filter:\x1b_`}},
		{"threads", &model{opts: Options{Keep: keep}, frame: frame, width: 300, height: 20, drill: 42, drillName: comm}, 6,
			[]string{`threads of 42 (\x1b]0;PWNED\a\nhx\xff)`, `\x1b[2Jhot\nfake`, `\u202etops\u009b\x7f`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := tt.model.render()
			termtest.Check(t, "view", out, "hx", "fake", "forged")
			if n := strings.Count(out, "\n") + 1; n != tt.lines {
				t.Errorf("%d lines, want %d:\n%s", n, tt.lines, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("view lacks %s:\n%s", w, out)
				}
			}
		})
	}
}
