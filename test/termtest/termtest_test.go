package termtest

import "testing"

func TestRaw(t *testing.T) {
	tests := []struct {
		text string
		raw  bool
	}{
		{"cpuwhy: x (PID 1)\n\tstack: a <- b — 12µs…\n", false},
		{"工作 ✓ \ufffd", false},
		{"a\x1b]0;x\a", true},
		{"a\rb", true},
		{"\x7f", true},
		{"\u009b", true},
		{"\u202e", true},
		{"\xff", true},
	}
	for _, tt := range tests {
		if got := Raw(tt.text) != ""; got != tt.raw {
			t.Errorf("Raw(%q) = %q, want raw %v", tt.text, Raw(tt.text), tt.raw)
		}
	}
}
