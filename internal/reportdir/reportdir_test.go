package reportdir

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestStemAndParse(t *testing.T) {
	at := time.Date(2026, 12, 3, 7, 45, 9, 363_000_000, time.UTC)
	for _, tt := range []struct {
		name, want string
	}{
		{"vpnserver", "20261203T074509.363Z-4011-vpnserver"},
		{"vpn-server", "20261203T074509.363Z-4011-vpn-server"},
		{"../../etc", "20261203T074509.363Z-4011-.._.._etc"},
		{"..", "20261203T074509.363Z-4011-_.."},
		{"", "20261203T074509.363Z-4011-_"},
		{"a b\x1b]0;x\a\n\xff", "20261203T074509.363Z-4011-a_b__0_x___"},
	} {
		got := Stem(at.In(time.FixedZone("x", 3600)), 4011, tt.name)
		if got != tt.want {
			t.Errorf("Stem(%q) = %q, want %q", tt.name, got, tt.want)
		}
		e, ok := Parse(got)
		if !ok || e.PID != 4011 || !e.Time.Equal(at) {
			t.Errorf("Parse(%q) = %+v, %v", got, e, ok)
		}
	}
	for _, bad := range []string{"", "x", "20261203T074509.363Z-0-a", "20261203T074509.363Z-12-", "20261203T074509.363Z-12-a/b", "2026-12-a"} {
		if e, ok := Parse(bad); ok {
			t.Errorf("Parse(%q) = %+v, want no report", bad, e)
		}
	}
}

func text(s string) func(io.Writer) error {
	return func(w io.Writer) error { _, err := io.WriteString(w, s); return err }
}

func TestWriteListPrune(t *testing.T) {
	d := Dir{Path: t.TempDir(), Max: 2}
	at := time.Date(2026, 12, 3, 7, 0, 0, 0, time.UTC)
	for i := range 3 {
		files := Files{JSON: text("{}"), Text: text("report")}
		if i == 1 {
			files[HTML] = text("<html>")
		}
		e, err := d.Write(at.Add(time.Duration(i)*time.Second), 100+i, "p", files)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{JSON, Text}
		if i == 1 {
			want = []string{JSON, Text, HTML}
		}
		if !slices.Equal(e.Kinds, want) {
			t.Errorf("report %d has %v, want %v", i, e.Kinds, want)
		}
	}
	// A report whose JSON is missing is not whole: not listed.
	os.WriteFile(filepath.Join(d.Path, Stem(at.Add(time.Hour), 9, "half")+Text), nil, 0o644)
	got, err := d.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].PID != 102 || got[1].PID != 101 {
		t.Fatalf("listed %+v, want the two newest, newest first", got)
	}
	names, _ := os.ReadDir(d.Path)
	if len(names) != 2+3+1 {
		t.Errorf("%d files left, want the two reports' five and the half one", len(names))
	}
	f, err := d.Open(got[0].Stem, JSON)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := f.Stat(); err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("a report's mode: %v, %v; want 0640", st.Mode(), err)
	}
	f.Close()
	for _, bad := range [][2]string{{"../x", JSON}, {got[0].Stem, ".sh"}, {"20261203T074509.363Z-1-a/../../b", JSON}} {
		if _, err := d.Open(bad[0], bad[1]); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Open(%q, %q) = %v, want not found", bad[0], bad[1], err)
		}
	}
}

// A write that fails leaves no file of the report.
func TestWriteFails(t *testing.T) {
	d := Dir{Path: t.TempDir()}
	boom := errors.New("boom")
	_, err := d.Write(time.Now(), 1, "p", Files{Text: text("ok"), JSON: func(io.Writer) error { return boom }})
	if !errors.Is(err, boom) {
		t.Fatalf("Write = %v, want boom", err)
	}
	if names, _ := os.ReadDir(d.Path); len(names) != 0 {
		t.Errorf("left %v", names)
	}
	_, err = Dir{Path: filepath.Join(d.Path, "missing")}.Write(time.Now(), 1, "p", Files{JSON: text("{}")})
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Write to a missing directory = %v", err)
	}
}
