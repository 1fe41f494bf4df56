package container

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/test/golden"
)

// cgroupResult is what a golden file next to each testdata/cgroup/*.txt holds.
type cgroupResult struct {
	Info *Info `json:"info"`
	// RuntimeGuessed marks the /kubepods/.../<id> form whose runtime the
	// Resolver settles by asking the engines.
	RuntimeGuessed bool   `json:"runtime_guessed,omitempty"`
	Error          string `json:"error,omitempty"`
}

func TestParseCgroupGolden(t *testing.T) {
	samples, err := filepath.Glob("testdata/cgroup/*.txt")
	if err != nil || len(samples) == 0 {
		t.Fatalf("no samples: %v", err)
	}
	for _, sample := range samples {
		name := strings.TrimSuffix(filepath.Base(sample), ".txt")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(sample)
			if err != nil {
				t.Fatal(err)
			}
			var res cgroupResult
			res.Info, res.RuntimeGuessed, err = parseCgroup(data)
			if err != nil {
				res.Error = err.Error()
			}
			// ParseCgroup must agree with the function it wraps.
			pub, pubErr := ParseCgroup(data)
			if (pubErr != nil) != (err != nil) || (pub == nil) != (res.Info == nil) || pub != nil && *pub != *res.Info {
				t.Errorf("ParseCgroup = %+v, %v; parseCgroup = %+v, %v", pub, pubErr, res.Info, err)
			}
			got, err := json.MarshalIndent(res, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden.Check(t, strings.TrimSuffix(sample, ".txt")+".json", got)
		})
	}
}

func TestParseCgroupTooLarge(t *testing.T) {
	data := bytes.Repeat([]byte("0::/\n"), maxCgroupFile/5+1)
	if _, err := ParseCgroup(data); err == nil {
		t.Fatal("no error for oversized input")
	}
}

func TestUnescapeUnit(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:            "plain",
		`build\x2dbox`:     "build-box",
		`a\x2Db`:           "a-b",
		`trailing\x2`:      `trailing\x2`,
		`bad\xzz`:          `bad\xzz`,
		`\x5c\x78\x32\x64`: `\x2d`, // escapes are undone once, not recursively
	} {
		if got := unescapeUnit(in); got != want {
			t.Errorf("unescapeUnit(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCapField(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"kept exactly", "ev\x1b[31mil\n\xff", "ev\x1b[31mil\n\xff"},
		{"cut on a rune boundary", strings.Repeat("é", maxField), strings.Repeat("é", maxField/2)},
		{"cut in invalid UTF-8", strings.Repeat("\x80", maxField+1), strings.Repeat("\x80", maxField-3)},
	}
	for _, tt := range tests {
		if got := capField(tt.in); got != tt.want {
			t.Errorf("%s: capField gave %d bytes %.20q, want %d bytes", tt.name, len(got), got, len(tt.want))
		}
	}
}

func FuzzParseCgroup(f *testing.F) {
	samples, _ := filepath.Glob("testdata/cgroup/*.txt")
	for _, s := range samples {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		start := time.Now()
		info, err := ParseCgroup(data)
		// Only a blow-up: a cgroup file parses in microseconds.
		if elapsed := time.Since(start); elapsed > time.Second {
			t.Fatalf("took %v on %d bytes", elapsed, len(data))
		}
		if err != nil && info != nil {
			t.Fatalf("info %+v with error %v", info, err)
		}
		if info != nil {
			if info.Runtime == None || info.ID == "" {
				t.Fatalf("container without runtime or id: %+v", info)
			}
			if len(info.Name) > maxField || len(info.ID) > maxField {
				t.Fatalf("field over cap: %+v", info)
			}
		}
	})
}
