package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cpuwhy/cpuwhy/test/scenario"
)

// TestSameFramesEverywhere: record, dump, syscalls --stacks and the
// diagnosis name one process's frames with one resolver, so they agree,
// even where the process's files are no longer what it maps: its
// binary replaced at its path and its library deleted since it started
// (busypoll: NatThreadMain in libnat.so calls RecvFrom, which calls
// recvfrom). Named by path, the replaced binary's frames would be the new
// file's and the deleted library's lost.
func TestSameFramesEverywhere(t *testing.T) {
	prog := scenario.Build(t, "busypoll")
	dir := t.TempDir()
	copyFile(t, prog.Path, filepath.Join(dir, "vpnserver"))
	copyFile(t, prog.Files["libnat.so"], filepath.Join(dir, "libnat.so"))
	cmd := scenario.Program{Name: "busypoll", Path: filepath.Join(dir, "vpnserver")}.Start(t, nil, "1741")
	pid := strconv.Itoa(cmd.Process.Pid)
	// The binary replaced by another (an upgrade in place), the library
	// deleted (an upgrade that removed it).
	copyFile(t, "/bin/true", filepath.Join(dir, "vpnserver.new"))
	if err := os.Rename(filepath.Join(dir, "vpnserver.new"), filepath.Join(dir, "vpnserver")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "libnat.so")); err != nil {
		t.Fatal(err)
	}

	// record: the hottest stack of NatThreadMain, outermost first in the
	// folded file.
	folded := filepath.Join(t.TempDir(), "p.folded")
	if code, _, errOut := runBinary(t, nil, "record", "-d", "2s", "-o", folded, pid); code != 0 {
		t.Fatalf("record: exit %d: %s", code, errOut)
	}
	recorded := hottestFolded(t, folded, "NatThreadMain")

	// A dump is a snapshot, which may land in the poller's own loop
	// between two RecvFrom calls (vpnserver+0x...): up to five are taken,
	// for one inside RecvFrom.
	var dumped []string
	for i := 0; i < 5 && !slices.Contains(dumped, "RecvFrom"); i++ {
		var dump struct {
			Threads []struct {
				Name   string   `json:"name"`
				Frames []string `json:"frames"`
			} `json:"threads"`
		}
		runJSON(t, &dump, "dump", "--json", pid)
		dumped = dumped[:0]
		for _, th := range dump.Threads {
			if th.Name == "NatThreadMain" {
				for _, f := range th.Frames {
					name, _, _ := strings.Cut(f, " (") // dump adds the source position
					dumped = append(dumped, name)
				}
			}
		}
	}

	var sys struct {
		Stacks []struct {
			Thread  string   `json:"thread"`
			Syscall string   `json:"syscall"`
			Frames  []string `json:"frames"`
		} `json:"stacks"`
	}
	runJSON(t, &sys, "syscalls", "--stacks", "-d", "1s", "--json", pid)
	var traced []string
	for _, s := range sys.Stacks {
		if s.Thread == "NatThreadMain" && s.Syscall == "recvfrom" {
			traced = s.Frames
			break
		}
	}

	var diag struct {
		Verdicts []struct {
			Stack []string `json:"stack"`
		} `json:"verdicts"`
	}
	runJSON(t, &diag, "-d", "2s", "--json", pid)
	var diagnosed []string
	if len(diag.Verdicts) > 0 {
		diagnosed = diag.Verdicts[0].Stack
	}

	t.Logf("record:    %q\ndump:      %q\nsyscalls:  %q\ndiagnosis: %q", recorded, dumped, traced, diagnosed)
	// The DWARF-unwound stacks agree from RecvFrom, the deleted
	// library's function, outwards: the leaf is wherever the thread was.
	for what, frames := range map[string][]string{"dump": dumped, "diagnosis": diagnosed} {
		if got, want := fromFrame(frames, "RecvFrom"), fromFrame(recorded, "RecvFrom"); len(want) < 3 || !slices.Equal(got, want) {
			t.Errorf("%s names %q from RecvFrom out, record %q", what, got, want)
		}
	}
	// syscalls --stacks walks frame pointers in the kernel, which the
	// scenario's code omits: its first frame, in libc's recvfrom, is
	// named as record names it.
	if len(traced) == 0 || len(recorded) == 0 || traced[0] != recorded[0] {
		t.Errorf("syscalls --stacks starts at %q, record at %q", traced, recorded)
	}
	for _, frames := range [][]string{recorded, dumped, traced, diagnosed} {
		for _, f := range frames {
			if strings.Contains(f, "[unknown]") || strings.Contains(f, "deleted") || strings.HasPrefix(f, "true+") {
				t.Errorf("frame %q named from the wrong file, or not at all", f)
			}
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o755); err != nil {
		t.Fatal(err)
	}
}

func runJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	code, out, errOut := runBinary(t, nil, args...)
	if code != 0 {
		t.Fatalf("cpuwhy %q: exit %d: %s", args, code, errOut)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("cpuwhy %q: %v\n%s", args, err, out)
	}
}

// hottestFolded returns the user frames of the thread's most sampled
// stack in a folded file, innermost first.
func hottestFolded(t *testing.T, path, thread string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		i := strings.LastIndexByte(line, ' ')
		n, _ := strconv.Atoi(line[i+1:])
		frames := strings.Split(line[:i], ";")
		if !strings.HasPrefix(frames[0], thread+"-") {
			continue
		}
		var user []string
		for _, f := range frames[1:] {
			if !strings.HasSuffix(f, "_[k]") {
				user = append(user, f)
			}
		}
		users[strings.Join(user, ";")] += n
	}
	best, bestN := "", 0
	for k, n := range users {
		if n > bestN {
			best, bestN = k, n
		}
	}
	out := strings.Split(best, ";")
	slices.Reverse(out)
	return out
}

// fromFrame returns frames from the first named name outwards.
func fromFrame(frames []string, name string) []string {
	i := slices.Index(frames, name)
	if i < 0 {
		return nil
	}
	return frames[i:]
}
