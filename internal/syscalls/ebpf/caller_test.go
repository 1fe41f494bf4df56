package ebpf

import (
	"bytes"
	"testing"

	"github.com/cpuwhy/cpuwhy/internal/proc"
)

// memAt is memory holding code at a base address.
type memAt struct {
	base uint64
	code []byte
}

func (m memAt) ReadAt(p []byte, off int64) (int, error) {
	return bytes.NewReader(m.code).ReadAt(p, off-int64(m.base))
}

func TestLeafCaller(t *testing.T) {
	const base = 0x1000
	code := make([]byte, 64)
	copy(code[10:], []byte{0xe8, 1, 2, 3, 4})    // call rel32, returns to base+15
	copy(code[30:], []byte{0xff, 0xd0})          // call *%rax, returns to base+32
	copy(code[40:], []byte{0x48, 0x8b, 0x45, 0}) // mov: not a call, base+44
	maps := []proc.Mapping{
		{Start: 0x800, End: base, Perms: "rw-p"},
		{Start: base, End: base + 64, Perms: "r-xp", Path: "/lib/x.so"},
	}
	mem := memAt{base, code}
	tests := []struct {
		words []uint64
		want  uint64
		ok    bool
	}{
		{[]uint64{7, 0x900, base + 15}, base + 15, true},  // skips data and a writable pointer
		{[]uint64{base + 44, base + 32}, base + 32, true}, // skips code not after a call
		{[]uint64{base + 44, 0, 1 << 40}, 0, false},
	}
	for _, tt := range tests {
		got, ok := leafCaller("amd64", tt.words, maps, mem)
		if got != tt.want || ok != tt.ok {
			t.Errorf("leafCaller(%x) = %x, %v; want %x, %v", tt.words, got, ok, tt.want, tt.ok)
		}
	}
	// arm64: BL at base, so the link register is base+4.
	arm := memAt{base, []byte{0x00, 0x00, 0x00, 0x94, 0, 0, 0, 0}}
	if got, ok := leafCaller("arm64", []uint64{base + 4}, maps, arm); !ok || got != base+4 {
		t.Errorf("arm64 BL: %x, %v", got, ok)
	}
	if _, ok := leafCaller("arm64", []uint64{base + 8}, maps, arm); ok {
		t.Error("arm64: a return address after a non-call")
	}
}
