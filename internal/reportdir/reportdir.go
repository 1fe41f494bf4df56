package reportdir

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Kinds of file of a report, by extension.
const (
	JSON = ".json"
	Text = ".txt"
	HTML = ".html"
)

// DefaultMax is how many reports a directory holds by default.
const DefaultMax = 100

// timeLayout is the UTC time of a report's name: sortable, no colons.
const timeLayout = "20060102T150405.000Z"

// Dir is a directory of reports.
type Dir struct {
	Path string
	Max  int // reports kept; 0: DefaultMax
}

// Entry is one report.
type Entry struct {
	Stem string // <time>-<pid>-<name>, without an extension
	Time time.Time
	PID  int
	Name string // the process name as it is in the file name
	// Kinds lists the files the report has (JSON first).
	Kinds []string
}

// File returns the path of one file of the report.
func (d Dir) File(e Entry, kind string) string { return filepath.Join(d.Path, e.Stem+kind) }

// Files is what one report is made of: a writer per kind, nil for a kind
// the report has not.
type Files map[string]func(io.Writer) error

// Write writes the files of a report taken at t of process pid (name),
// the JSON last, then removes the oldest reports past Max. A failure
// leaves no file of the report behind.
func (d Dir) Write(t time.Time, pid int, name string, files Files) (Entry, error) {
	e := Entry{Stem: Stem(t, pid, name), Time: t.UTC().Truncate(time.Millisecond), PID: pid, Name: safeName(name)}
	var written []string
	for _, kind := range []string{Text, HTML, JSON} {
		write := files[kind]
		if write == nil {
			continue
		}
		path := d.File(e, kind)
		if err := writeFile(path, write); err != nil {
			for _, p := range written {
				os.Remove(p)
			}
			return Entry{}, fmt.Errorf("writing report %s: %w", path, err)
		}
		written = append(written, path)
		e.Kinds = append(e.Kinds, kind)
	}
	slices.SortFunc(e.Kinds, kindOrder)
	if err := d.prune(); err != nil {
		return e, err
	}
	return e, nil
}

func kindOrder(a, b string) int {
	rank := func(k string) int { return strings.Index(JSON+Text+HTML, k) }
	return rank(a) - rank(b)
}

// Stem is the name of a report's files without the extension.
func Stem(t time.Time, pid int, name string) string {
	return t.UTC().Format(timeLayout) + "-" + strconv.Itoa(pid) + "-" + safeName(name)
}

// safeName keeps letters, digits, '.', '_' and '-', at most 64 bytes,
// never "" nor made of dots only.
func safeName(s string) string {
	b := []byte(s)
	if len(b) > 64 {
		b = b[:64]
	}
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	if len(bytes.Trim(b, ".")) == 0 {
		return "_" + string(b)
	}
	return string(b)
}

// writeFile writes path whole or not at all.
func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// A report holds command lines, paths and sockets of the
		// target: not for every user of the host.
		err = os.Chmod(tmp, 0o640)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// maxListed bounds what List reads of a directory someone else may have
// filled.
const maxListed = 100_000

// List returns the whole reports in the directory, newest first.
func (d Dir) List() ([]Entry, error) {
	f, err := os.Open(d.Path)
	if err != nil {
		return nil, fmt.Errorf("listing reports in %s: %w", d.Path, err)
	}
	defer f.Close()
	names, err := f.Readdirnames(maxListed)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("listing reports in %s: %w", d.Path, err)
	}
	byStem := map[string]*Entry{}
	for _, n := range names {
		kind := filepath.Ext(n)
		stem := strings.TrimSuffix(n, kind)
		if kind != JSON && kind != Text && kind != HTML {
			continue
		}
		e := byStem[stem]
		if e == nil {
			parsed, ok := Parse(stem)
			if !ok {
				continue
			}
			e = &parsed
			byStem[stem] = e
		}
		e.Kinds = append(e.Kinds, kind)
	}
	var out []Entry
	for _, e := range byStem {
		if !slices.Contains(e.Kinds, JSON) {
			continue // being written, or left by a failed write
		}
		slices.SortFunc(e.Kinds, kindOrder)
		out = append(out, *e)
	}
	slices.SortFunc(out, func(a, b Entry) int {
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		return strings.Compare(b.Stem, a.Stem)
	})
	return out, nil
}

// Parse reads a stem written by Stem.
func Parse(stem string) (Entry, bool) {
	ts, rest, ok := strings.Cut(stem, "-")
	if !ok {
		return Entry{}, false
	}
	t, err := time.Parse(timeLayout, ts)
	if err != nil {
		return Entry{}, false
	}
	pidText, name, ok := strings.Cut(rest, "-")
	pid, err := strconv.Atoi(pidText)
	if !ok || err != nil || pid <= 0 || name == "" || safeName(name) != name {
		return Entry{}, false
	}
	// Only what Stem writes: time.Parse also takes a comma before the
	// milliseconds, Atoi a sign or leading zeros.
	if Stem(t, pid, name) != stem {
		return Entry{}, false
	}
	return Entry{Stem: stem, Time: t, PID: pid, Name: name}, true
}

// prune removes the oldest reports past Max.
func (d Dir) prune() error {
	max := d.Max
	if max <= 0 {
		max = DefaultMax
	}
	all, err := d.List()
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range all[min(max, len(all)):] {
		// The JSON goes first: a half-removed report is no longer listed.
		for _, kind := range []string{JSON, Text, HTML} {
			if err := os.Remove(d.File(e, kind)); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("removing old reports: %w", errors.Join(errs...))
	}
	return nil
}

// Open opens one file of a report named by its stem, only when the stem
// is one List would show.
func (d Dir) Open(stem, kind string) (*os.File, error) {
	if _, ok := Parse(stem); !ok || (kind != JSON && kind != Text && kind != HTML) {
		return nil, fmt.Errorf("no report %q: %w", stem+kind, os.ErrNotExist)
	}
	return os.Open(filepath.Join(d.Path, stem+kind))
}
