package python

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// TestLineTables checks lineOf against each interpreter's own reading
// of its line tables: testdata/lines.py prints, for every code object
// of target.py, the table and the line of each instruction.
func TestLineTables(t *testing.T) {
	pythons := map[int]string{}
	for minor := 8; minor <= 13; minor++ {
		if m, _ := filepath.Glob("/root/.pyenv/versions/3." + itoa(minor) + ".*/bin/python3." + itoa(minor)); len(m) > 0 {
			pythons[minor] = m[0]
		}
	}
	if len(pythons) == 0 {
		t.Skip("no CPython under /root/.pyenv/versions")
	}
	for minor, py := range pythons {
		t.Run("3."+itoa(minor), func(t *testing.T) {
			out, err := exec.Command(py, "testdata/lines.py", "testdata/target.py").Output()
			if err != nil {
				t.Fatal(err)
			}
			var codes []struct {
				Name  string
				First int
				Table []int
				Lines [][2]int
			}
			if err := json.Unmarshal(out, &codes); err != nil {
				t.Fatal(err)
			}
			format := layouts[minor].linetable()
			n := 0
			for _, c := range codes {
				table := make([]byte, len(c.Table))
				for i, b := range c.Table {
					table[i] = byte(b)
				}
				for _, ol := range c.Lines {
					off, want := ol[0], ol[1]
					if want <= 0 {
						want = c.First // no line (the module's prologue is at 0): the function's
					}
					at := off
					if format == locations {
						at = off / 2
					}
					if got := lineOf(format, table, c.First, at); got != want {
						t.Errorf("%s offset %d: line %d, CPython says %d", c.Name, off, got, want)
					}
					n++
				}
			}
			t.Logf("%d instructions of %d code objects", n, len(codes))
		})
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
