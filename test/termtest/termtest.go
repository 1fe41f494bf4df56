// Package termtest checks, for tests, that text cpuwhy writes for a
// terminal holds nothing a terminal would act on: the escaping of names a
// target chose (package escape) seen from the outside.
package termtest

import (
	"fmt"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// Raw describes the first byte or rune of text that a terminal would act
// on, or that disguises text, and its line; "" when there is none. The
// layout characters a report writes itself, newline and tab, are allowed;
// anything else that is not graphic is not: C0 controls (ESC), DEL, C1
// controls, invalid UTF-8, format characters (U+202E), separators.
func Raw(text string) string {
	line := 1
	for i, r := range text {
		switch {
		case r == '\n':
			line++
			continue
		case r == '\t' || r == ' ':
			continue
		case r == utf8.RuneError && !strings.HasPrefix(text[i:], "\ufffd"):
			return fmt.Sprintf("invalid UTF-8 byte %#x at line %d: %q", text[i], line, lineAt(text, i))
		case !unicode.IsPrint(r):
			return fmt.Sprintf("%U at line %d: %q", r, line, lineAt(text, i))
		}
	}
	return ""
}

func lineAt(text string, i int) string {
	start := strings.LastIndexByte(text[:i], '\n') + 1
	end := strings.IndexByte(text[i:], '\n')
	if end < 0 {
		return text[start:]
	}
	return text[start : i+end]
}

// Check fails tb when text holds a raw byte (see Raw) or a line that starts
// with one of forged: the text after a newline inside a name, which would
// be a line of its own had the newline been written raw.
func Check(tb testing.TB, what, text string, forged ...string) {
	tb.Helper()
	if r := Raw(text); r != "" {
		tb.Errorf("%s: %s", what, r)
	}
	for _, line := range strings.Split(text, "\n") {
		for _, f := range forged {
			if strings.HasPrefix(line, f) {
				tb.Errorf("%s: forged line %q (a name's newline written raw)", what, line)
			}
		}
	}
}
