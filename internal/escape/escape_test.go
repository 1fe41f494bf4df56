package escape

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestString(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"plain", "cruncher", "cruncher"},
		{"spaces and punctuation", "nginx: worker process [x]", "nginx: worker process [x]"},
		{"other scripts", "工作线程 é ñ Ωμέγα", "工作线程 é ñ Ωμέγα"},
		{"symbols and marks", "e\u0301 ✓ 🔥", "e\u0301 ✓ 🔥"},
		{"title sequence", "\x1b]0;PWNED\a", `\x1b]0;PWNED\a`},
		{"clear screen", "\x1b[2J\x1b[H", `\x1b[2J\x1b[H`},
		{"forged line", "x) R 1 (y\n 9 9 (PID 1): 89.7%", `x) R 1 (y\n 9 9 (PID 1): 89.7%`},
		{"named C0", "\a\b\t\n\v\f\r", `\a\b\t\n\v\f\r`},
		{"other C0", "\x00\x01\x1f", `\x00\x01\x1f`},
		{"DEL", "a\x7fb", `a\x7fb`},
		{"invalid bytes", "\xff\xfe", `\xff\xfe`},
		{"truncated rune", "\xc3(", `\xc3(`},
		{"surrogate half", "\xed\xa0\x80", `\xed\xa0\x80`},
		{"overlong slash", "\xc0\xaf", `\xc0\xaf`},
		{"C1 NEL", "\u0085", `\u0085`},
		{"C1 CSI", "\u009b31m", `\u009b31m`},
		{"bidi override", "\u202egpj.exe", `\u202egpj.exe`},
		{"bidi isolate", "a\u2066b\u2069", `a\u2066b\u2069`},
		{"zero width", "a\u200bb\u200d", `a\u200bb\u200d`},
		{"line separator", "a\u2028b\u2029", `a\u2028b\u2029`},
		{"no-break space", "a\u00a0b", `a\u00a0b`},
		{"private use", "\ue000", `\ue000`},
		{"tag character", "\U000e0001", `\U000e0001`},
		{"byte order mark", "\ufeffx", `\ufeffx`},
		{"replacement rune itself", "\ufffd", "\ufffd"},
		{"backslash kept", `C:\x1b`, `C:\x1b`},
		{"mixed", "ok\xffé\u0085 \u202egpj\u200b", `ok\xffé\u0085 \u202egpj\u200b`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := String(tt.in); got != tt.want {
				t.Errorf("String(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestStringDoesNotAllocateWhenSafe(t *testing.T) {
	s := strings.Repeat("NatThreadMain é ", 8)
	if n := testing.AllocsPerRun(100, func() { _ = String(s) }); n != 0 {
		t.Errorf("String of safe text allocated %v times", n)
	}
}

// shown reports the first rune of s a terminal would act on, or that
// String should have escaped; ok when there is none.
func shown(s string) (rune, bool) {
	for i, r := range s {
		if r == utf8.RuneError && !strings.HasPrefix(s[i:], "\ufffd") {
			return rune(s[i]), false
		}
		if r != ' ' && !unicode.IsPrint(r) {
			return r, false
		}
	}
	return 0, true
}

func FuzzString(f *testing.F) {
	for _, s := range []string{"", "cruncher", "\x1b]0;PWNED\a", "a\nb", "\xff", "\u202e", "\u0085", `\x1b`, "é\xc3", "\U000e0001"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e := String(s)
		if r, ok := shown(e); !ok {
			t.Fatalf("String(%q) = %q holds %U", s, e, r)
		}
		if again := String(e); again != e {
			t.Fatalf("not idempotent: String(%q) = %q, then %q", s, e, again)
		}
		if _, ok := shown(s); ok && !strings.ContainsRune(s, utf8.RuneError) && e != s {
			t.Fatalf("String(%q) changed safe text to %q", s, e)
		}
		if len(e) > 4*len(s) {
			t.Fatalf("String(%q) grew %d bytes to %d", s, len(s), len(e))
		}
		// The escapes are Go's: with backslashes and quotes made
		// unambiguous, the text reads back as the bytes it came from.
		if !strings.ContainsAny(s, `\"`) {
			back, err := strconv.Unquote(`"` + e + `"`)
			if err != nil || back != s {
				t.Fatalf("String(%q) = %q reads back as %q (%v)", s, e, back, err)
			}
		}
	})
}

type pattern string

type stringer struct{ name string }

func (s stringer) String() string { return s.name }

func TestSprintf(t *testing.T) {
	tests := []struct {
		name   string
		format string
		args   []any
		want   string
	}{
		{"numbers untouched", "%d %5.1f %x %t %v", []any{42, 3.14159, uint64(255), true, int8(-1)}, "42   3.1 ff true -1"},
		{"string", "thread %s", []any{"a\nb"}, `thread a\nb`},
		{"width counts the escapes", "[%-8s]", []any{"\x1b"}, `[\x1b    ]`},
		{"right aligned", "[%6s]", []any{"\a"}, `[    \a]`},
		{"bytes", "%s", []any{[]byte("\x1b[2J")}, `\x1b[2J`},
		{"error", "cpuwhy: %v", []any{errors.New("no process named \x1b]0;x\a")}, `cpuwhy: no process named \x1b]0;x\a`},
		{"stringer", "%s", []any{stringer{"\u202eevil"}}, `\u202eevil`},
		{"pointer stringer", "%s", []any{&stringer{"a\tb"}}, `a\tb`},
		{"named string type", "%s", []any{pattern("x\ny")}, `x\ny`},
		{"slice", "%v", []any{[]string{"a\n", "b"}}, `[a\n b]`},
		{"nil", "%v", []any{nil}, "<nil>"},
		{"format string is ours", "a\tb %s\n", []any{"c"}, "a\tb c\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Sprintf(tt.format, tt.args...); got != tt.want {
				t.Errorf("Sprintf(%q, %q) = %q, want %q", tt.format, tt.args, got, tt.want)
			}
		})
	}
}

func TestArgsKeepsCallersSlice(t *testing.T) {
	args := []any{1, "a", "\n", "b"}
	got := Args(args)
	if args[2] != "\n" {
		t.Errorf("Args changed its argument to %q", args[2])
	}
	if got[0] != 1 || got[1] != "a" || got[2] != `\n` || got[3] != "b" {
		t.Errorf("Args = %q", got)
	}
}

func TestArgsDoesNotAllocateWhenSafe(t *testing.T) {
	args := []any{42, "NatThreadMain", 99.1, "R"}
	if n := testing.AllocsPerRun(100, func() { _ = Args(args) }); n != 0 {
		t.Errorf("Args of safe strings and numbers allocated %v times", n)
	}
}

func TestJSON(t *testing.T) {
	tests := []struct {
		name string
		in   string // a string value to encode
		want string // its JSON after JSON
	}{
		{"plain", "cruncher", `"cruncher"`},
		{"C0 is the encoder's", "\x1b]0;x\a\n", `"\u001b]0;x\u0007\n"`},
		{"DEL", "a\x7f", `"a\u007f"`},
		{"C1", "\u009b2J", `"\u009b2J"`},
		{"bidi override", "\u202egpj", `"\u202egpj"`},
		{"beyond the BMP", "\U000e0001", `"\udb40\udc01"`},
		{"printable kept", "工作 é 🔥", `"工作 é 🔥"`},
		{"invalid UTF-8 as the encoder has it", "\xff", `"\ufffd"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			got := JSON(b)
			if string(got) != tt.want {
				t.Errorf("JSON(%s) = %s, want %s", b, got, tt.want)
			}
			var back, orig string
			if err := json.Unmarshal(got, &back); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &orig); err != nil {
				t.Fatal(err)
			}
			if back != orig {
				t.Errorf("JSON changed the value: %q, want %q", back, orig)
			}
		})
	}
}

func TestJSONLeavesSafeInputAlone(t *testing.T) {
	b := []byte(`{"name":"é","n":1}` + "\n")
	if got := JSON(b); &got[0] != &b[0] || string(got) != string(b) {
		t.Errorf("JSON copied or changed safe input: %s", got)
	}
}

func FuzzJSON(f *testing.F) {
	for _, s := range []string{"", "x", "\x1b\u009b\u202e\x7f", "\U000e0001é", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := json.Marshal(map[string][]string{s: {s, "x"}})
		if err != nil {
			t.Fatal(err)
		}
		got := JSON(b)
		for i, r := range string(got) {
			if r < 0x20 || r == utf8.RuneError && !strings.HasPrefix(string(got[i:]), "\ufffd") || r >= 0x7f && !unicode.IsPrint(r) {
				t.Fatalf("JSON(%s) = %s holds %U", b, got, r)
			}
		}
		var orig, back map[string][]string
		if err := json.Unmarshal(b, &orig); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("JSON(%s) = %s: %v", b, got, err)
		}
		if len(orig) != len(back) {
			t.Fatalf("decoded %v, want %v", back, orig)
		}
		for k, v := range orig {
			if w := back[k]; len(w) != 2 || w[0] != v[0] || w[1] != v[1] {
				t.Fatalf("decoded %q, want %q", back, orig)
			}
		}
	})
}
