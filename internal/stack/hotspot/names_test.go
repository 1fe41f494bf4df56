package hotspot

import (
	"strings"
	"testing"

	"github.com/cpuwhy/cpuwhy/internal/stack"
	"github.com/cpuwhy/cpuwhy/internal/stack/perfmap"
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

func TestParseRelease(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int
	}{
		{"IMPLEMENTOR=\"Debian\"\nJAVA_VERSION=\"17.0.15\"\n", 17},
		{"JAVA_VERSION=\"1.8.0_292\"\n", 8},
		{"JAVA_VERSION=\"11.0.2\"", 11},
		{"JAVA_VERSION=\"21\"\n", 21},
		{"JAVA_RUNTIME_VERSION=\"17.0.15+6\"\n", 0},
		{"JAVA_VERSION=\"x\"\n", 0},
		{"", 0},
	} {
		if got := parseRelease([]byte(tt.in)); got != tt.want {
			t.Errorf("parseRelease(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func FuzzParseRelease(f *testing.F) {
	f.Add([]byte("JAVA_VERSION=\"17.0.15\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if v := parseRelease(b); v < 0 || v > 9999 {
			t.Fatalf("version %d", v)
		}
	})
}

// TestOldJDKNotAsked: a JDK before 17 is never sent SIGQUIT (it would
// start a listener and refuse the command); the note says why its code
// is not named.
func TestOldJDKNotAsked(t *testing.T) {
	in := &instance{jdk: 11, names: map[string]string{}}
	if in.ask() {
		t.Fatal("a JDK 11 was asked")
	}
	if in.asked != 0 || in.pending != nil {
		t.Errorf("a request was made: asked %d", in.asked)
	}
	in.unnamed = 5
	in.m = perfmap.Follow(stack.Process{PID: 1, NsPID: 1}, perfmap.Limits{})
	notes := strings.Join(in.Notes(), "\n")
	if !strings.Contains(notes, "JDK 11, which has no Compiler.perfmap") {
		t.Errorf("notes %q", notes)
	}
}
