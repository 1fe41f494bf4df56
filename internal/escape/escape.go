package escape

import (
	"fmt"
	"io"
	"reflect"
	"strings"
	"unicode"
	"unicode/utf8"
)

const hex = "0123456789abcdef"

// String returns s with every byte or rune a terminal would act on, or that
// would disguise the text, written as an escape (see the package comment).
// Text that needs none is returned as it is, without allocating.
func String(s string) string {
	i := firstUnsafe(s)
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if safe(r, size) {
			b.WriteString(s[i : i+size])
		} else {
			writeEscape(&b, s[i], r, size)
		}
		i += size
	}
	return b.String()
}

// firstUnsafe returns the index of the first byte of s that String must
// escape, or len(s).
func firstUnsafe(s string) int {
	for i := 0; i < len(s); {
		if c := s[i]; c >= 0x20 && c < 0x7f {
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if !safe(r, size) {
			return i
		}
		i += size
	}
	return len(s)
}

// safe says whether the rune r, encoded in size bytes, may be written as
// it is.
func safe(r rune, size int) bool {
	if r == utf8.RuneError && size <= 1 {
		return false // a byte of invalid UTF-8
	}
	return r == ' ' || unicode.IsPrint(r)
}

func writeEscape(b *strings.Builder, c byte, r rune, size int) {
	switch {
	case r == utf8.RuneError && size <= 1:
		b.WriteString(`\x`)
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xf])
	case r == '\a':
		b.WriteString(`\a`)
	case r == '\b':
		b.WriteString(`\b`)
	case r == '\f':
		b.WriteString(`\f`)
	case r == '\n':
		b.WriteString(`\n`)
	case r == '\r':
		b.WriteString(`\r`)
	case r == '\t':
		b.WriteString(`\t`)
	case r == '\v':
		b.WriteString(`\v`)
	case r < 0x80:
		b.WriteString(`\x`)
		b.WriteByte(hex[r>>4])
		b.WriteByte(hex[r&0xf])
	case r <= 0xffff:
		b.WriteString(`\u`)
		for shift := 12; shift >= 0; shift -= 4 {
			b.WriteByte(hex[r>>shift&0xf])
		}
	default:
		b.WriteString(`\U`)
		for shift := 28; shift >= 0; shift -= 4 {
			b.WriteByte(hex[r>>shift&0xf])
		}
	}
}

// Fprintf is fmt.Fprintf with every argument but numbers and booleans
// escaped (see Args). Text of cpuwhy's own, newlines included, belongs in
// the format string, which is written as it is; there is no Fprintln,
// whose arguments would be both ours and escaped.
func Fprintf(w io.Writer, format string, args ...any) (int, error) {
	return fmt.Fprintf(w, format, Args(args)...)
}

// Sprintf is fmt.Sprintf with every argument but numbers and booleans
// escaped (see Args).
func Sprintf(format string, args ...any) string {
	return fmt.Sprintf(format, Args(args)...)
}

// Args returns args for a fmt call, with every value that is not a number
// or a boolean replaced by its text (what %v prints: its String or Error
// method, or the value itself) escaped. Numbers keep their type, so %d,
// %5.1f and %x format them as usual; anything else is a string afterwards,
// to be formatted with %s or %v (a width such as %-16s counts the escaped
// text). Numbers are not escaped, their String methods included: the types
// that are numbers are cpuwhy's own (durations, errnos) and say nothing a
// target chose; a rune printed with %c would be, so do not.
func Args(args []any) []any {
	var out []any // a copy, made at the first argument that changes
	for i, a := range args {
		e, changed := arg(a)
		if !changed {
			if out != nil {
				out[i] = a
			}
			continue
		}
		if out == nil {
			out = make([]any, len(args))
			copy(out, args[:i])
		}
		out[i] = e
	}
	if out == nil {
		return args
	}
	return out
}

// arg returns a as Args passes it on, and whether that differs from a.
func arg(a any) (any, bool) {
	switch v := a.(type) {
	case nil:
		return a, false
	case string:
		if e := String(v); e != v {
			return e, true
		}
		return a, false
	case []byte:
		return String(string(v)), true
	case int, int64, uint64, uint32, int32, uint, float64, bool:
		return a, false
	}
	switch reflect.ValueOf(a).Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return a, false
	}
	return String(fmt.Sprint(a)), true
}

// JSON returns encoded JSON (from encoding/json) with the runes a terminal
// would act on or that disguise text written as \u escapes: DEL, C1
// controls, format characters such as U+202E, and the others String
// escapes. encoding/json already escapes C0 controls, but writes these as
// they are, and `cpuwhy --json` is often read on a terminal. The JSON
// decodes to the same values: outside strings JSON is ASCII, and inside
// them \u00XX is the rune itself. Invalid UTF-8, which encoding/json never
// writes (it writes U+FFFD instead), becomes \ufffd. b is returned as it is
// when nothing needs escaping.
func JSON(b []byte) []byte {
	var out []byte
	done := 0 // b[:done] is in out
	for j := 0; j < len(b); {
		if b[j] < 0x7f {
			j++
			continue
		}
		r, size := utf8.DecodeRune(b[j:])
		if safe(r, size) {
			j += size
			continue
		}
		if out == nil {
			out = make([]byte, 0, len(b)+16)
		}
		out = appendJSONRune(append(out, b[done:j]...), r)
		j += size
		done = j
	}
	if out == nil {
		return b
	}
	return append(out, b[done:]...)
}

// appendJSONRune writes r as JSON's \uXXXX, a surrogate pair beyond the
// basic multilingual plane.
func appendJSONRune(out []byte, r rune) []byte {
	u4 := func(out []byte, v rune) []byte {
		out = append(out, '\\', 'u')
		for shift := 12; shift >= 0; shift -= 4 {
			out = append(out, hex[v>>shift&0xf])
		}
		return out
	}
	if r <= 0xffff {
		return u4(out, r)
	}
	r -= 0x10000
	out = u4(out, 0xd800+(r>>10)&0x3ff)
	return u4(out, 0xdc00+r&0x3ff)
}
