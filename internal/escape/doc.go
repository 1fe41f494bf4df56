// Package escape makes text that a target controls safe to show on a
// terminal, and is the one place cpuwhy decides what that means.
//
// cpuwhy runs as root and prints what other users' processes chose to be
// called: process and thread names (any 15 bytes), command lines, file and
// socket paths, symbol names from their binaries, container names. Written
// raw, `\e]0;PWNED\a` would set the terminal's title, `\e[2J` clear it, and
// a newline inside a name would forge a line of the report.
//
// The rule: the data (the structs the commands fill, and their JSON) keeps
// the target's bytes exactly; text for a person is escaped where it is
// written. Text renderers and the command line print through Fprintf and
// Sprintf, which escape every argument that is not a number, so a renderer
// cannot forget one field; the format string is ours and is written as it
// is. String escapes one value, for code that measures or cuts text before
// it is printed (column widths), and JSON makes encoded JSON safe on a
// terminal without changing what it decodes to.
//
// What String escapes, in Go's notation: C0 controls and DEL (\n, \t,
// \x1b), each byte of invalid UTF-8 (\xff), and every rune that is not
// graphic (unicode.IsPrint, and the ASCII space): C1 controls (\u009b is
// CSI to some terminals), format characters such as the bidi override
// U+202E and zero-width characters, which make one name look like another,
// line and paragraph separators, non-ASCII spaces, private-use and
// unassigned runes. Letters, marks, digits, punctuation and symbols of any
// script are kept. Backslash is kept too, so that escaping is idempotent:
// text escaped twice (an error message naming a process, printed by an
// escaping printer) reads the same as text escaped once. The price is that
// a name which spells `\x1b` looks like one holding the byte; neither acts
// on the terminal.
package escape
