package cli

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// foldedFunctions reads a .folded profile: the samples of each function
// (a frame's name without its position), counted once per stack, and the
// samples in all.
func foldedFunctions(t *testing.T, path string) (map[string]int, int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	funcs, total := map[string]int{}, 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		stack, count, ok := strings.Cut(sc.Text(), " ")
		n, err := strconv.Atoi(count)
		if !ok || err != nil {
			t.Fatalf("malformed folded line %q", sc.Text())
		}
		total += n
		seen := map[string]bool{}
		for _, frame := range strings.Split(stack, ";")[1:] {
			name, _, _ := strings.Cut(frame, " ")
			if name == "[unknown]" || strings.HasPrefix(name, "[unknown]+") {
				name = "[unknown]"
			}
			if !seen[name] {
				seen[name] = true
				funcs[name] += n
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return funcs, total
}

// TestExecDuringWindow records and diagnoses a process that runs exec in
// the middle of the window (issue 18, item 9): execphase burns CPU in
// phase_one_burn for a second, then execs phasetwo, which burns in
// phase_two_burn. Both functions are named, each by the mappings of the
// program it ran in (before, the first phase's samples were [unknown]),
// the process goes by its new name, and the outputs say it ran exec.
func TestExecDuringWindow(t *testing.T) {
	cpuwhyBinary(t) // built before the first phase's second starts
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"main thread execs", []string{"1000"}},
		// The kernel gives the thread the PID as its TID at the exec:
		// its samples must follow it.
		{"other thread execs", []string{"1000", "thread"}},
	} {
		t.Run("record/"+tt.name, func(t *testing.T) {
			cmd := startProgram(t, "execphase", tt.args...)
			pid := cmd.Process.Pid
			folded := filepath.Join(t.TempDir(), "exec.folded")
			code, out, errOut := runBinary(t, nil, "record", "-d", "2.5s", "-o", folded, strconv.Itoa(pid))
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			for _, want := range []string{
				fmt.Sprintf("cpuwhy record: %d (phasetwo)", pid),
				fmt.Sprintf("note: process %d ran exec ", pid),
				"execphase became phasetwo",
				"phase_one_burn (execphase)",
				"phase_two_burn (phasetwo)",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			funcs, total := foldedFunctions(t, folded)
			one, two, unknown := funcs["phase_one_burn"], funcs["phase_two_burn"], funcs["[unknown]"]
			t.Logf("%d samples: phase_one_burn %d, phase_two_burn %d, [unknown] %d", total, one, two, unknown)
			// A second of each phase at most a core: tens of samples at
			// the least, even on a loaded machine.
			if one < 10 || two < 10 {
				t.Errorf("phase_one_burn has %d samples and phase_two_burn %d of %d: want both named in many", one, two, total)
			}
			if unknown*20 > total {
				t.Errorf("%d of %d samples have [unknown] frames", unknown, total)
			}
		})
	}

	t.Run("diagnosis", func(t *testing.T) {
		// The diagnosis sets up BPF programs before its window opens,
		// which on a loaded machine took over a second: the exec comes
		// later, and the window is long enough to hold it either way.
		cmd := startProgram(t, "execphase", "2500")
		pid := cmd.Process.Pid
		code, out, errOut := runBinary(t, nil, "-d", "5s", strconv.Itoa(pid))
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		for _, want := range []string{
			fmt.Sprintf("cpuwhy: phasetwo (PID %d; execphase until it ran exec ", pid),
			fmt.Sprintf("\nnote: process %d ran exec ", pid),
			"execphase became phasetwo",
			"phase_two_burn",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("report lacks %q:\n%s", want, out)
			}
		}
	})
}
