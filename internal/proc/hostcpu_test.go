package proc

import "testing"

func TestParseHostCPU(t *testing.T) {
	for _, tt := range []struct {
		in   string
		busy uint64
		ok   bool
	}{
		{"cpu  100 2 30 999 5 6 7 8 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n", 100 + 2 + 30 + 6 + 7, true},
		{"cpu  1 2 3 4 5 6 7\n", 1 + 2 + 3 + 6 + 7, true},
		{"cpu  1 2 3 4 5 6\n", 0, false},
		{"cpu0 1 2 3 4 5 6 7 8\n", 0, false},
		{"cpu  1 2 x 4 5 6 7 8\n", 0, false},
		{"", 0, false},
	} {
		got, err := ParseHostCPU([]byte(tt.in))
		if (err == nil) != tt.ok || got.Busy != tt.busy {
			t.Errorf("ParseHostCPU(%q) = %+v, %v; want busy %d, ok %v", tt.in, got, err, tt.busy, tt.ok)
		}
	}
	if h, err := (FS{}).HostCPU(); err != nil || h.Busy == 0 {
		t.Errorf("HostCPU of this host: %+v, %v", h, err)
	}
}
