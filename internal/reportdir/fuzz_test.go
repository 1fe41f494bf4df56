package reportdir

import (
	"testing"
	"time"
)

// Parse reads names found in a directory others may write to: whatever it
// takes is a name Stem writes back the same, and never a path.
func FuzzParse(f *testing.F) {
	f.Add("20261203T074509.363Z-4011-vpnserver")
	f.Add("20261203T074509.363Z-4011-a-b.c")
	f.Add("20261203T074509.363Z-4011-../x")
	f.Add("x")
	f.Fuzz(func(t *testing.T, stem string) {
		e, ok := Parse(stem)
		if !ok {
			return
		}
		if got := Stem(e.Time, e.PID, e.Name); got != stem {
			t.Errorf("Parse(%q) = %+v, written back as %q", stem, e, got)
		}
		if e.Time.Location() != time.UTC {
			t.Errorf("Parse(%q): time in %v", stem, e.Time.Location())
		}
	})
}
