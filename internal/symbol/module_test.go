package symbol

import (
	"testing"

	"github.com/cpuwhy/cpuwhy/internal/proc"
)

func TestFrame(t *testing.T) {
	maps, err := proc.ParseMaps([]byte(`55d0a1a00000-55d0a1a01000 r--p 00000000 08:01 1234 /opt/vpnserver/vpnserver
55d0a1a01000-55d0a1a02000 r-xp 00001000 08:01 1234 /opt/vpnserver/vpnserver
7f0000000000-7f0000001000 r-xp 00001000 08:01 99 /opt/vpnserver/libnat.so (deleted)
7f0000010000-7f0000011000 rwxp 00000000 00:00 0
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0 [vdso]
`))
	if err != nil {
		t.Fatal(err)
	}
	m := NewModules(maps)
	tests := map[uint64]string{
		0x55d0a1a01139: "vpnserver+0x1139", // 0x139 into a mapping of file offset 0x1000
		0x7f0000000040: "libnat.so+0x1040",
		0x7f0000010008: "0x7f0000010008 (anonymous code)",
		0x7ffd000009a0: "[vdso]+0x9a0",
		0x55d0a1a00010: "0x55d0a1a00010 (unmapped)", // not executable
		0x1:            "0x1 (unmapped)",
		0xffffffffffff: "0xffffffffffff (unmapped)",
	}
	for pc, want := range tests {
		if got := m.Frame(pc); got != want {
			t.Errorf("Frame(%#x) = %q, want %q", pc, got, want)
		}
	}
}
