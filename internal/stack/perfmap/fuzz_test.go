package perfmap

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// fuzzLimits are small, so that the fuzzer reaches every limit.
var fuzzLimits = Limits{MaxBytes: 1 << 16, MaxEntries: 40, MaxName: 8}

// FuzzTable reads a map whole and in two pieces cut where the fuzzer
// says, and checks both against a plain reading of its lines: every line
// on its own, the last one written that holds an address naming it.
func FuzzTable(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.map"))
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, uint16(len(data)/2))
	}
	f.Add([]byte("1000 100 a\n1040 40 b\n1020 10 c\n1fff 2 d\n2000 10 e\n"), uint16(13))
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		if len(data) > int(fuzzLimits.MaxBytes) {
			return
		}
		whole, err := Parse(bytes.NewReader(data), fuzzLimits)
		if err != nil && err != ErrFull {
			t.Fatal(err)
		}
		st := whole.Stats()
		if st.Entries > fuzzLimits.MaxEntries || st.Bytes > int64(len(data)) || len(whole.starts) > 2*st.Entries+1 {
			t.Fatalf("stats %+v, %d ranges", st, len(whole.starts))
		}
		for i := 1; i < len(whole.starts); i++ {
			if whole.starts[i] <= whole.starts[i-1] || whole.ids[i] == whole.ids[i-1] {
				t.Fatalf("ranges not disjoint and merged at %d: %#x %d, %#x %d", i, whole.starts[i-1], whole.ids[i-1], whole.starts[i], whole.ids[i])
			}
		}

		// In two pieces, as a map is read while it is written.
		c := min(int(cut), len(data))
		pieces := NewTable(fuzzLimits)
		n, err := pieces.Read(bytes.NewReader(data[:c]))
		if err == nil {
			_, err = pieces.Read(bytes.NewReader(data[n:]))
		}
		if err != nil && err != ErrFull {
			t.Fatal(err)
		}
		if pieces.Stats() != st {
			t.Fatalf("in pieces cut at %d: stats %+v, whole %+v", c, pieces.Stats(), st)
		}
		if diff := sameLookups(whole, pieces, data); diff != "" {
			t.Fatalf("in pieces cut at %d: %s", c, diff)
		}

		// Against the lines read one by one.
		type sym struct {
			start, end uint64
			name       []byte
		}
		var syms []sym
		lines := bytes.Split(data, []byte("\n"))
		for _, line := range lines[:len(lines)-1] { // the last has no newline
			if len(syms) == fuzzLimits.MaxEntries {
				break
			}
			line = line[:min(len(line), whole.maxLine())]
			start, size, name, ok := ParseLine(line)
			if !ok || size == 0 || start+size < start {
				continue
			}
			syms = append(syms, sym{start, start + size, name[:min(len(name), fuzzLimits.MaxName)]})
		}
		for _, addr := range interesting(data) {
			var want *sym
			for i, s := range syms {
				if s.start <= addr && addr < s.end {
					want = &syms[i]
				}
			}
			got, ok := whole.Symbol(addr)
			if ok != (want != nil) || ok && (got.Start != want.start || got.Start+got.Size != want.end || !bytes.Equal(got.Name, want.name)) {
				t.Fatalf("Symbol(%#x) = %#x+%#x %q, %v; the lines say %+v", addr, got.Start, got.Size, got.Name, ok, want)
			}
		}
	})
}
