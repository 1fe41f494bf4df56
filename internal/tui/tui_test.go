package tui

import (
	"testing"

	tea "charm.land/bubbletea/v2"

	"github.com/cpuwhy/cpuwhy/internal/top"
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
