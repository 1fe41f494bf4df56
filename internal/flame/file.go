package flame

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/cpuwhy/cpuwhy/internal/outfile"
)

// Format is an output format of a profile.
type Format string

const (
	FormatPprof  Format = "pprof"
	FormatFolded Format = "folded"
	FormatHTML   Format = "html"
)

// ErrUnknownFormat is returned when neither a file name nor a format name
// says which format to write.
var ErrUnknownFormat = errors.New("unknown profile format: use .pb.gz (pprof), .folded (flamegraph.pl) or .html (flame graph)")

// extensions maps file name endings to formats; longest endings first so
// that ".pb.gz" is not taken for something ending in ".gz".
var extensions = []struct {
	ext    string
	format Format
}{
	{".pb.gz", FormatPprof},
	{".pprof", FormatPprof},
	{".pb", FormatPprof},
	{".folded", FormatFolded},
	{".html", FormatHTML},
	{".htm", FormatHTML},
}

// FormatOf picks the format from a file name. Names ending in .txt (or
// anything else) are ambiguous and need an explicit format (ParseFormat).
func FormatOf(path string) (Format, error) {
	lower := strings.ToLower(path)
	for _, e := range extensions {
		if strings.HasSuffix(lower, e.ext) {
			return e.format, nil
		}
	}
	return "", fmt.Errorf("%q: %w", filepath.Base(path), ErrUnknownFormat)
}

// ParseFormat reads a format name as given to --format.
func ParseFormat(name string) (Format, error) {
	switch f := Format(strings.ToLower(name)); f {
	case FormatPprof, FormatFolded, FormatHTML:
		return f, nil
	case "pb", "pb.gz", "proto":
		return FormatPprof, nil
	}
	return "", fmt.Errorf("format %q: %w", name, ErrUnknownFormat)
}

// Write writes p to w in format f.
func Write(w io.Writer, f Format, p *Profile) error {
	switch f {
	case FormatPprof:
		return WritePprof(w, p)
	case FormatFolded:
		return WriteFolded(w, p)
	case FormatHTML:
		return WriteHTML(w, p)
	}
	return fmt.Errorf("format %q: %w", f, ErrUnknownFormat)
}

// WriteFile writes p to path in the format its extension names.
func WriteFile(path string, p *Profile) error {
	f, err := FormatOf(path)
	if err != nil {
		return err
	}
	return WriteFileAs(path, f, p)
}

// WriteFileAs writes p to path in format f, as cpuwhy writes every output
// file (package outfile): a regular file appears whole or not at all, and
// a device, a FIFO or a link is written through, never replaced.
func WriteFileAs(path string, f Format, p *Profile) error {
	out, err := outfile.Open(context.Background(), path, outfile.Options{})
	if err != nil {
		return fmt.Errorf("writing profile: %w", err)
	}
	defer out.Close()
	if err := out.Write(func(w io.Writer) error { return Write(w, f, p) }); err != nil {
		return fmt.Errorf("writing %s profile: %w", f, err)
	}
	return nil
}
