package disasm

import (
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	tests := []struct {
		arch string
		code []byte
		want []string
	}{
		// A spin-wait: pause; mov eax,[rdi]; test eax,eax; jne back.
		{"amd64", []byte{0xf3, 0x90, 0x8b, 0x07, 0x85, 0xc0, 0x75, 0xf8}, []string{"pause", "mov eax, dword ptr [rdi]", "test eax, eax", "jnz 0x1000"}},
		// syscall; ret; then a byte that starts no instruction.
		{"amd64", []byte{0x0f, 0x05, 0xc3, 0x06}, []string{"syscall", "ret", ".byte 0x06"}},
		// yield; b .-4 (little-endian words).
		{"arm64", []byte{0x3f, 0x20, 0x03, 0xd5, 0xff, 0xff, 0xff, 0x17}, []string{"yield", "b .+0xfffffffffffffffc"}},
		{"arm64", []byte{0, 0, 0, 0}, []string{".word 0x00000000"}},
	}
	for _, tt := range tests {
		got, err := Decode(tt.arch, tt.code, 0x1000)
		if err != nil {
			t.Fatal(err)
		}
		var texts []string
		for _, in := range got {
			texts = append(texts, in.Text)
		}
		if strings.Join(texts, "; ") != strings.Join(tt.want, "; ") {
			t.Errorf("%s % x: got %q, want %q", tt.arch, tt.code, texts, tt.want)
		}
	}
	if _, err := Decode("mips", []byte{0}, 0); err == nil {
		t.Error("mips decoded")
	}
}

// FuzzDecode: any bytes decode without panic, every byte accounted for.
func FuzzDecode(f *testing.F) {
	f.Add([]byte{0xf3, 0x90, 0x8b, 0x07, 0x85, 0xc0, 0x75, 0xf8}, true)
	f.Add([]byte{0x3f, 0x20, 0x03, 0xd5}, false)
	f.Fuzz(func(t *testing.T, code []byte, x86 bool) {
		arch := "arm64"
		if x86 {
			arch = "amd64"
		}
		ins, err := Decode(arch, code, 0x400000)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, in := range ins {
			if in.Addr != 0x400000+uint64(n) || in.Len <= 0 {
				t.Fatalf("instruction %+v at offset %d", in, n)
			}
			n += in.Len
		}
		if want := len(code); x86 && n != want || !x86 && n != want/4*4 {
			t.Fatalf("decoded %d of %d bytes", n, len(code))
		}
	})
}
