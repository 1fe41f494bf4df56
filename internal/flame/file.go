package flame

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
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

// WriteFileAs writes p to path in format f. The file appears whole or not
// at all: it is written beside path and renamed over it, so an error (or
// Ctrl-C) never leaves a truncated profile that a viewer would half-read.
func WriteFileAs(path string, f Format, p *Profile) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing profile: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if err := Write(tmp, f, p); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s profile to %s: %w", f, path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("writing profile to %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing profile to %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing profile to %s: %w", path, err)
	}
	return nil
}
