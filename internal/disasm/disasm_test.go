package disasm

import (
	"os"
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

func TestFindLoop(t *testing.T) {
	spin, err := os.ReadFile("testdata/spin_wait_for_work.amd64")
	if err != nil {
		t.Fatal(err)
	}
	const base = 0x1520
	spinLoop := Loop{Start: 0x1530, End: 0x1548}
	// yield; ldr w0,[x1]; cbnz w0,out; b back: an arm64 spin-wait.
	arm := []byte{0x3f, 0x20, 0x03, 0xd5, 0x20, 0x00, 0x40, 0xb9, 0x60, 0x00, 0x00, 0x35, 0xfd, 0xff, 0xff, 0x17}
	tests := []struct {
		name string
		arch string
		code []byte
		base uint64
		pc   uint64
		want Loop
		ok   bool
	}{
		// Wherever the samples land, the same loop is found, from its
		// head on: timer samples land after the pause, hardware
		// samples on it, and a slow load spreads them.
		{"on the pause", "amd64", spin, base, 0x153e, spinLoop, true},
		{"after the pause", "amd64", spin, base, 0x1540, spinLoop, true},
		{"on the loop head", "amd64", spin, base, 0x1530, spinLoop, true},
		{"past a forward exit branch", "amd64", spin, base, 0x1538, spinLoop, true},
		{"on the closing branch", "amd64", spin, base, 0x1546, spinLoop, true},
		{"inner loop", "amd64", spin, base, 0x1586, Loop{Start: 0x1580, End: 0x1595}, true},
		// From the epilogue on, no branch goes back before it.
		{"after the loops", "amd64", spin, base, 0x15f7, Loop{}, false},
		{"outside the code", "amd64", spin, base, 0x1000, Loop{}, false},
		{"arm64 yield loop", "arm64", arm, 0x1000, 0x1004, Loop{Start: 0x1000, End: 0x1010}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := FindLoop(tt.arch, tt.code, tt.base, tt.pc)
			if got != tt.want || ok != tt.ok {
				t.Errorf("FindLoop(%#x) = %#x, %v; want %#x, %v", tt.pc, got, ok, tt.want, tt.ok)
			}
			if !ok {
				return
			}
			// The loop decodes in step from its head to its end.
			ins, err := Decode(tt.arch, tt.code[got.Start-tt.base:got.End-tt.base], got.Start)
			if err != nil {
				t.Fatal(err)
			}
			last := ins[len(ins)-1]
			if last.Addr+uint64(last.Len) != got.End || !last.Jump || last.Target != got.Start {
				t.Errorf("loop %#x does not end in its closing branch: %+v", got, last)
			}
		})
	}
}

// FuzzFindLoop: any bytes and address, no panic, and a loop found holds pc.
func FuzzFindLoop(f *testing.F) {
	f.Add([]byte{0xf3, 0x90, 0x8b, 0x07, 0x85, 0xc0, 0x75, 0xf8}, uint16(2), true)
	f.Add([]byte{0x3f, 0x20, 0x03, 0xd5, 0xff, 0xff, 0xff, 0x17}, uint16(4), false)
	f.Fuzz(func(t *testing.T, code []byte, off uint16, x86 bool) {
		arch := "arm64"
		if x86 {
			arch = "amd64"
		}
		const base = 0x400000
		pc := base + uint64(off)
		l, ok := FindLoop(arch, code, base, pc)
		if ok && (!l.Contains(pc) || l.End-l.Start > 2*MaxLoop) {
			t.Fatalf("loop %#x around %#x", l, pc)
		}
	})
}
