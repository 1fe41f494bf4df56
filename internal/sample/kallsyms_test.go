package sample

import (
	"testing"

	"github.com/cpuwhy/cpuwhy/internal/proc"
)

const kallsymsText = `ffffffff81000000 T _stext
ffffffff81001000 t do_one
ffffffff81001000 D some_data
ffffffff81002000 T __x64_sys_recvfrom
ffffffffc0000000 t nf_hook	[nf_tables]
`

func TestParseKallsyms(t *testing.T) {
	k, err := ParseKallsyms([]byte(kallsymsText))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		pc   uint64
		want string
	}{
		{0xffffffff81000010, "_stext"},
		{0xffffffff81001fff, "do_one"},
		{0xffffffff81002000, "__x64_sys_recvfrom"},
		{0xffffffffc0000123, "nf_hook [nf_tables]"},
		{0xffffffff80000000, "[kernel]"},
	} {
		if got := k.Name(tc.pc); got != tc.want {
			t.Errorf("Name(%#x) = %q, want %q", tc.pc, got, tc.want)
		}
	}
	if k.Restricted {
		t.Error("Restricted with real addresses")
	}
}

func TestParseKallsymsRestricted(t *testing.T) {
	k, err := ParseKallsyms([]byte("0000000000000000 T _stext\n0000000000000000 t do_one\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !k.Restricted || k.Name(0xffffffff81000010) != "[kernel]" {
		t.Errorf("restricted table: Restricted=%v, Name=%q", k.Restricted, k.Name(0xffffffff81000010))
	}
}

func TestParseKallsymsErrors(t *testing.T) {
	for _, text := range []string{"zz T x\n", "ffff\n", "ffff TT x\n"} {
		if _, err := ParseKallsyms([]byte(text)); err == nil {
			t.Errorf("ParseKallsyms(%q) succeeded", text)
		}
	}
}

func TestReadKernelSymbols(t *testing.T) {
	k, err := ReadKernelSymbols(proc.FS{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d kernel text symbols, restricted=%v", k.Len(), k.Restricted)
	if !k.Restricted && k.Len() < 1000 {
		t.Errorf("only %d kernel text symbols", k.Len())
	}
}

func FuzzParseKallsyms(f *testing.F) {
	f.Add([]byte(kallsymsText))
	f.Add([]byte("0000000000000000 T _stext\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParseKallsyms(data)
		if err != nil {
			return
		}
		k.Name(0xffffffff81000000)
		for i := 1; i < len(k.syms); i++ {
			if k.syms[i].addr < k.syms[i-1].addr {
				t.Fatal("not sorted")
			}
		}
	})
}
