package unwind

import (
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/cpuwhy/cpuwhy/test/privtest"
	"github.com/cpuwhy/cpuwhy/test/scenario"
)

// TestRowsMatchReadelf evaluates every row of every FDE of real objects
// and compares the CFA, rbp and return address rules with what binutils'
// readelf --debug-dump=frames-interp prints for the same address.
func TestRowsMatchReadelf(t *testing.T) {
	if _, err := exec.LookPath("readelf"); err != nil {
		privtest.Require(t, "readelf (binutils) is not installed")
	}
	bp := scenario.Build(t, "busypoll")
	cp := scenario.Build(t, "compute")
	for _, path := range []string{bp.Path, bp.Files["libnat.so"], cp.Path, libcPath(t)} {
		t.Run(path, func(t *testing.T) {
			f, err := elf.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			s, err := ELFSections(f)
			if err != nil {
				t.Fatal(err)
			}
			tab, err := NewTable(s)
			if err != nil {
				t.Fatal(err)
			}
			// readelf exits 1 on libc without saying why, having
			// printed everything: judge it by its output.
			out, err := exec.Command("readelf", "--debug-dump=frames-interp", path).Output()
			if len(out) == 0 {
				t.Fatalf("readelf printed nothing: %v", err)
			}
			rows, mismatches := 0, 0
			forEachReadelfRow(t, out, func(loc uint64, want map[string]string) {
				rows++
				row, err := tab.RowAt(loc)
				if err != nil {
					t.Errorf("RowAt(%#x): %v", loc, err)
					mismatches++
					return
				}
				got := map[string]string{"CFA": formatCFA(row.CFA), "ra": formatRule(row.Regs[RegAMD64RA])}
				if _, ok := want["rbp"]; ok {
					got["rbp"] = formatRule(row.Regs[RegAMD64RBP])
				}
				for k, w := range want {
					if k != "CFA" && k != "ra" && k != "rbp" {
						continue
					}
					if got[k] != w && !(w == "u" && got[k] == "s") {
						mismatches++
						if mismatches < 10 {
							t.Errorf("at %#x %s = %s, readelf says %s", loc, k, got[k], w)
						}
					}
				}
			})
			t.Logf("%d FDEs, %d rows compared, %d mismatches", tab.Len(), rows, mismatches)
			if rows == 0 {
				t.Fatal("no rows in readelf's output")
			}
		})
	}
}

func formatCFA(c CFARule) string {
	switch c.Kind {
	case CFARegOffset:
		return fmt.Sprintf("%s%+d", regName(c.Reg), c.Offset)
	case CFAPLT, CFAUnsupported:
		return "exp"
	}
	return "u"
}

func formatRule(r Rule) string {
	switch r.Kind {
	case RuleSame:
		return "s"
	case RuleUndefined:
		return "u"
	case RuleOffset:
		return fmt.Sprintf("c%+d", r.Offset)
	case RuleValOffset:
		return fmt.Sprintf("v%+d", r.Offset)
	case RuleRegister:
		return regName(r.Reg)
	}
	return "exp"
}

func regName(r uint16) string {
	names := []string{"rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip"}
	if int(r) < len(names) {
		return names[r]
	}
	return "r" + strconv.Itoa(int(r))
}

// forEachReadelfRow calls fn for each row of each FDE in readelf's
// frames-interp output, with the column values by register name.
func forEachReadelfRow(t *testing.T, out []byte, fn func(loc uint64, cols map[string]string)) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	inFDE := false
	var header []string
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		switch {
		case len(fields) >= 4 && (fields[3] == "FDE" || fields[3] == "CIE"):
			inFDE = fields[3] == "FDE"
			header = nil
		case len(fields) > 0 && fields[0] == "LOC":
			header = fields
		case inFDE && header != nil && len(fields) == len(header) && len(fields[0]) == 16:
			loc, err := strconv.ParseUint(fields[0], 16, 64)
			if err != nil {
				t.Fatalf("readelf row %q: %v", line, err)
			}
			cols := map[string]string{}
			for i := 1; i < len(header); i++ {
				cols[header[i]] = fields[i]
			}
			fn(loc, cols)
		}
	}
}
