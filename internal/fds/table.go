package fds

import (
	"bytes"
	"errors"
	"fmt"
)

// MaxLines caps the lines a table parser reads. /proc/PID/net tables are
// written by the kernel, so a container cannot make them huge at will,
// but a host with a million connections can: beyond the cap a parser
// stops and says so, and what it read so far is still returned.
const MaxLines = 1 << 20

// maxLineLen caps one table line. The longest real line (tcp6) is under
// 200 bytes and a unix socket path adds at most 108; longer lines are
// malformed and skipped.
const maxLineLen = 1024

// ErrTooLarge says a table has more than MaxLines lines.
var ErrTooLarge = errors.New("table too large")

// eachLine calls f with every line of data after the header, without the
// newline, skipping lines longer than maxLineLen.
func eachLine(data []byte, f func(line []byte)) error {
	_, data, _ = bytes.Cut(data, []byte("\n")) // header
	for n := 0; len(data) > 0; n++ {
		if n >= MaxLines {
			return fmt.Errorf("%w: more than %d lines", ErrTooLarge, MaxLines)
		}
		var line []byte
		line, data, _ = bytes.Cut(data, []byte("\n"))
		if len(line) <= maxLineLen {
			f(line)
		}
	}
	return nil
}

// parseTable parses every line of data after the header with parseLine.
func parseTable(data []byte, parseLine func([]byte) (Socket, bool)) ([]Socket, error) {
	var socks []Socket
	err := eachLine(data, func(line []byte) {
		if s, ok := parseLine(line); ok {
			socks = append(socks, s)
		}
	})
	return socks, err
}

// fields splits line at runs of spaces into at most len(dst) fields, and
// returns the fields and what follows the last one (after one space).
func fields(line []byte, dst [][]byte) ([][]byte, []byte) {
	out := dst[:0]
	for len(out) < cap(dst) {
		line = bytes.TrimLeft(line, " ")
		if len(line) == 0 {
			return out, nil
		}
		end := bytes.IndexByte(line, ' ')
		if end < 0 {
			return append(out, line), nil
		}
		out = append(out, line[:end])
		line = line[end:]
	}
	if len(line) > 0 {
		line = line[1:]
	}
	return out, line
}
