package hotspot

import (
	"strings"
	"testing"
)

func TestMethodName(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"long Hot.computeLoop(long)", "Hot.computeLoop"},
		{"void java.util.HashMap$Node.<init>(int, java.lang.Object)", "java.util.HashMap$Node.<init>"},
		{"java.lang.Object[] java.util.ArrayList.toArray()", "java.util.ArrayList.toArray"},
		{"Interpreter", ""},
		{"StubRoutines (1)", ""},
		{"I2C/C2I adapters(0xabc)", ""},
		{"void nodot()", ""},
		{"void Trailing.()", ""},
		{"(x)", ""},
	} {
		got, ok := MethodName(tt.in)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("MethodName(%q) = %q, %v; want %q", tt.in, got, ok, tt.want)
		}
	}
}

func FuzzMethodName(f *testing.F) {
	for _, s := range []string{"long Hot.computeLoop(long)", "Interpreter", "a.b()", " .()", "x y.z(("} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, ok := MethodName(s)
		if !ok {
			return
		}
		if !strings.Contains(s, m) || strings.ContainsAny(m, " (") || !strings.Contains(m, ".") {
			t.Fatalf("MethodName(%q) = %q", s, m)
		}
	})
}
