package perfmap

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseLine(t *testing.T) {
	tests := []struct {
		line        string
		start, size uint64
		name        string // "" when the line is not a symbol
	}{
		{"7fba18005bc0 288 JS:*hotLoop [eval]:2:17", 0x7fba18005bc0, 0x288, "JS:*hotLoop [eval]:2:17"},
		{"0x1000 0X20 name", 0x1000, 0x20, "name"},
		{"ABCDEF 1f Name", 0xabcdef, 0x1f, "Name"},
		{"1000 20\tname with\ttabs ", 0x1000, 0x20, "name with\ttabs "},
		{"1000   20   spaced", 0x1000, 0x20, "spaced"},
		{"1000 20 crlf\r", 0x1000, 0x20, "crlf"},
		{"ffffffffffffffff 1 last", 0xffffffffffffffff, 1, "last"},
		{"1000 20 ", 0, 0, ""},
		{"1000 20", 0, 0, ""},
		{"1000", 0, 0, ""},
		{"", 0, 0, ""},
		{" 1000 20 leading", 0, 0, ""},
		{"x1000 20 name", 0, 0, ""},
		{"0x 20 name", 0, 0, ""},
		{"1000,20 name", 0, 0, ""},
		{"10000000000000000 20 seventeen", 0, 0, ""},
		{"1000 -20 negative", 0, 0, ""},
	}
	for _, tt := range tests {
		start, size, name, ok := ParseLine([]byte(tt.line))
		if ok != (tt.name != "") || ok && (start != tt.start || size != tt.size || string(name) != tt.name) {
			t.Errorf("ParseLine(%q) = %#x, %#x, %q, %v; want %#x, %#x, %q", tt.line, start, size, name, ok, tt.start, tt.size, tt.name)
		}
	}
}

// TestParse reads the maps in testdata: excerpts of maps written by node
// 20 (--perf-basic-prof) and CPython 3.12 (-X perf), one in the shape
// perf-map-agent writes for a JVM, overlapping symbols, and damaged lines.
func TestParse(t *testing.T) {
	type lookup struct {
		addr uint64
		name string // "": nothing
	}
	tests := []struct {
		file    string
		stats   Stats
		lookups []lookup
	}{
		{
			file:  "node.map",
			stats: Stats{Lines: 11, Entries: 11},
			lookups: []lookup{
				{0x18cdd80, "Builtin:JSEntry"},
				{0x18cdd80 + 0xbf, "Builtin:JSEntry"},
				{0x18cdd80 + 0xc0, ""},
				{0x7fba18005bc0 + 0x100, "JS:*hotLoop [eval]:2:17"},
				{0x350e395ce686, "JS:~hotLoop [eval]:2:17"},
				{0x1341a29314de + 0x18, "JS:~setHasRejectionToWarn node:internal/process/promises:155:31"},
				{0, ""},
				{^uint64(0), ""},
			},
		},
		{
			file:  "python.map",
			stats: Stats{Lines: 5, Entries: 5},
			lookups: []lookup{
				{0x7f6e5d20e79b + 5, "py::hot:<string>"},
				{0x7f6e5d20e000 + 0xa, "py::_find_and_load:<frozen importlib._bootstrap>"},
				{0x7f6e5d20e00b, "py::_ModuleLockManager.__init__:<frozen importlib._bootstrap>"},
				{0x7f6e5d20e02c, ""},
			},
		},
		{
			file:  "java.map",
			stats: Stats{Lines: 4, Entries: 4},
			lookups: []lookup{
				{0x7f3d0d0b5e20, "Interpreter"},
				// The method was compiled again at the same address,
				// larger: the later line names all of it.
				{0x7f3d0d0c1000, "Lcom/example/App;::compute (recompiled)"},
				{0x7f3d0d0c1090, "Lcom/example/App;::compute (recompiled)"},
				{0x7f3d0d0c10c0, ""},
			},
		},
		{
			// 1000 100 outer; 1040 40 inner; 1020 10 newest;
			// 2000 10 gone; 2000 10 reused; 1fff 2 straddle.
			file:  "overlap.map",
			stats: Stats{Lines: 6, Entries: 6},
			lookups: []lookup{
				{0xfff, ""},
				{0x1000, "outer"},
				{0x101f, "outer"},
				{0x1020, "newest"},
				{0x102f, "newest"},
				{0x1030, "outer"},
				{0x1040, "inner"},
				{0x107f, "inner"},
				{0x1080, "outer"},
				{0x10ff, "outer"},
				{0x1100, ""},
				{0x1ffe, ""},
				{0x1fff, "straddle"},
				{0x2000, "straddle"},
				{0x2001, "reused"},
				{0x200f, "reused"},
				{0x2010, ""},
			},
		},
		{
			// The last line has no newline: it is left for the next read.
			file:  "malformed.map",
			stats: Stats{Lines: 14, Entries: 4, Malformed: 10, Bytes: int64(len(mustRead(t, "malformed.map")) - len("3900 10 cut off mid-line"))},
			lookups: []lookup{
				{0x3000, "with prefix and crlf"},
				{0x3100, "tab\tseparated name"},
				{0x3200, "many  blanks  kept "},
				{0x3300, ""},
				{0x3400, ""},
				{0x3700, ""},
				{0x3800, "\xff\x1b]0;x\x07 hostile bytes"},
				{0x3900, ""},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data := mustRead(t, tt.file)
			table, err := Parse(bytes.NewReader(data), DefaultLimits)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.stats
			if want.Bytes == 0 {
				want.Bytes = int64(len(data))
			}
			if got := table.Stats(); got != want {
				t.Errorf("stats %+v, want %+v", got, want)
			}
			for _, l := range tt.lookups {
				name, ok := table.Lookup(l.addr)
				if ok != (l.name != "") || string(name) != l.name {
					t.Errorf("Lookup(%#x) = %q, %v; want %q", l.addr, name, ok, l.name)
				}
			}
		})
	}
}

func mustRead(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestReadTails reads each map as a process that is writing it would be
// read: in pieces cut anywhere, even mid-line, each Read starting where
// the last one's consumed bytes end. The table must come out as from one
// read of the whole.
func TestReadTails(t *testing.T) {
	for _, file := range []string{"node.map", "python.map", "java.map", "overlap.map", "malformed.map"} {
		data := mustRead(t, file)
		whole, err := Parse(bytes.NewReader(data), DefaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		for step := 1; step <= len(data); step += 7 {
			table := NewTable(DefaultLimits)
			var off int64
			for end := step; ; end += step {
				end = min(end, len(data))
				n, err := table.Read(bytes.NewReader(data[off:end]))
				if err != nil {
					t.Fatal(err)
				}
				off += n
				if end == len(data) {
					break
				}
			}
			if off != whole.Stats().Bytes || table.Stats() != whole.Stats() {
				t.Fatalf("%s in pieces of %d: consumed %d, stats %+v; whole: %+v", file, step, off, table.Stats(), whole.Stats())
			}
			if diff := sameLookups(whole, table, data); diff != "" {
				t.Fatalf("%s in pieces of %d: %s", file, step, diff)
			}
		}
	}
}

// sameLookups compares two tables at every address a map's lines make
// interesting: each start and end, and either side of them.
func sameLookups(a, b *Table, data []byte) string {
	for _, addr := range interesting(data) {
		an, aok := a.Lookup(addr)
		bn, bok := b.Lookup(addr)
		if aok != bok || !bytes.Equal(an, bn) {
			return fmt.Sprintf("at %#x: %q %v, then %q %v", addr, an, aok, bn, bok)
		}
	}
	return ""
}

func interesting(data []byte) []uint64 {
	addrs := []uint64{0, 1, ^uint64(0)}
	for _, line := range bytes.Split(data, []byte("\n")) {
		if start, size, _, ok := ParseLine(line); ok {
			end := start + size
			addrs = append(addrs, start-1, start, start+1, end-1, end, end+1)
		}
	}
	return addrs
}

func TestLimits(t *testing.T) {
	var many strings.Builder
	for i := range 100 {
		fmt.Fprintf(&many, "%x 10 symbol%d\n", 0x1000+0x10*i, i)
	}
	t.Run("entries", func(t *testing.T) {
		table, err := Parse(strings.NewReader(many.String()), Limits{MaxEntries: 10})
		if !errors.Is(err, ErrFull) {
			t.Errorf("err %v, want ErrFull", err)
		}
		if st := table.Stats(); st.Entries != 10 || !st.Full {
			t.Errorf("stats %+v, want 10 entries and full", st)
		}
		if name, _ := table.Lookup(0x1000 + 0x10*9); string(name) != "symbol9" {
			t.Errorf("the 10th symbol is %q", name)
		}
		if _, ok := table.Lookup(0x1000 + 0x10*10); ok {
			t.Error("the 11th symbol was kept")
		}
		if n, err := table.Read(strings.NewReader("9000 10 more\n")); n != 0 || !errors.Is(err, ErrFull) {
			t.Errorf("a Read of a full table: %d, %v", n, err)
		}
	})
	t.Run("bytes", func(t *testing.T) {
		// 19 lines and 4 bytes of the 20th.
		lines := int64(len(strings.Join(strings.SplitAfter(many.String(), "\n")[:19], "")))
		table, err := Parse(strings.NewReader(many.String()), Limits{MaxBytes: lines + 4})
		if !errors.Is(err, ErrFull) {
			t.Errorf("err %v, want ErrFull", err)
		}
		if st := table.Stats(); st.Entries != 19 || st.Bytes != lines || !st.Full {
			t.Errorf("stats %+v, want 19 entries in %d bytes and full", st, lines)
		}
	})
	t.Run("name", func(t *testing.T) {
		long := strings.Repeat("n", 100000)
		table, err := Parse(strings.NewReader("1000 10 "+long+"\n2000 10 short\n"), Limits{MaxName: 64})
		if err != nil {
			t.Fatal(err)
		}
		if name, _ := table.Lookup(0x1000); string(name) != long[:64] {
			t.Errorf("long name kept as %d bytes, want its first 64", len(name))
		}
		if name, _ := table.Lookup(0x2000); string(name) != "short" {
			t.Errorf("the line after a long one: %q", name)
		}
		if st := table.Stats(); st.LongNames != 1 || st.Entries != 2 || st.Bytes != int64(len(long)+len("1000 10 \n2000 10 short\n")) {
			t.Errorf("stats %+v", st)
		}
		// The partial line is held, not grown with the line: a long
		// line that never ends costs maxLine bytes.
		if cap(table.partial) > 4*table.maxLine() {
			t.Errorf("held %d bytes of a line", cap(table.partial))
		}
	})
}

// BenchmarkIndex measures the index of a node-sized map as it grows: a
// first read of 100,000 symbols, then tails of 1,000.
func BenchmarkIndex(b *testing.B) {
	var first, tail bytes.Buffer
	for i := range 100000 {
		fmt.Fprintf(&first, "%x %x JS:*function%d file.js:%d:%d\n", 0x7f0000000000+uint64(i)*0x200, 0x180, i, i, i%80)
	}
	for i := range 1000 {
		fmt.Fprintf(&tail, "%x %x JS:*later%d file.js:%d:%d\n", 0x7f0000000000+uint64(i)*0x2000+0x100, 0x180, i, i, i%80)
	}
	b.Run("first", func(b *testing.B) {
		for b.Loop() {
			Parse(bytes.NewReader(first.Bytes()), DefaultLimits)
		}
	})
	b.Run("tail", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			table, _ := Parse(bytes.NewReader(first.Bytes()), DefaultLimits)
			b.StartTimer()
			table.Read(bytes.NewReader(tail.Bytes()))
		}
	})
	b.Run("lookup", func(b *testing.B) {
		table, _ := Parse(bytes.NewReader(first.Bytes()), DefaultLimits)
		var i uint64
		for b.Loop() {
			table.Lookup(0x7f0000000000 + i*0x1f3%(100000*0x200))
			i++
		}
	})
}
