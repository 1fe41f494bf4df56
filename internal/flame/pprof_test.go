package flame

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/pprof/profile"
)

func TestPprofParsesBack(t *testing.T) {
	p := seedProfile()
	var b bytes.Buffer
	if err := WritePprof(&b, p); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b.Bytes(), []byte{0x1f, 0x8b}) {
		t.Error("pprof output is not gzip-compressed")
	}
	got, err := profile.Parse(&b)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.CheckValid(); err != nil {
		t.Fatal(err)
	}
	if len(got.SampleType) != 2 || got.SampleType[0].Type != "samples" || got.SampleType[0].Unit != "count" ||
		got.SampleType[1].Type != "cpu" || got.SampleType[1].Unit != "nanoseconds" {
		t.Errorf("sample types = %v", got.SampleType)
	}
	if got.Period != p.Period.Nanoseconds() || got.DurationNanos != p.Duration.Nanoseconds() || got.TimeNanos != p.Start.UnixNano() {
		t.Errorf("period %d, duration %d, time %d", got.Period, got.DurationNanos, got.TimeNanos)
	}
	if len(got.Sample) != len(p.Stacks) {
		t.Fatalf("%d samples, want %d", len(got.Sample), len(p.Stacks))
	}
	for i, s := range got.Sample {
		want := p.Stacks[i]
		if s.Value[0] != want.Count || s.Value[1] != want.Count*p.Period.Nanoseconds() {
			t.Errorf("sample %d values %v, want %d and %d×period", i, s.Value, want.Count, want.Count)
		}
		if th := s.Label["thread"]; len(th) != 1 || th[0] != want.Thread {
			t.Errorf("sample %d thread label %v, want %q", i, th, want.Thread)
		}
		if tid := s.NumLabel["tid"]; len(tid) != 1 || tid[0] != int64(want.TID) {
			t.Errorf("sample %d tid label %v, want %d", i, tid, want.TID)
		}
		// Flatten locations back to frames (lines are innermost first
		// within a location, as frames are within a stack).
		var names, modules []string
		for _, l := range s.Location {
			for _, line := range l.Line {
				names = append(names, line.Function.Name)
				modules = append(modules, l.Mapping.File)
			}
		}
		var wantNames, wantModules []string
		for _, f := range want.Frames {
			wantNames = append(wantNames, f.Name())
			m := f.Module
			if f.IsKernel() {
				m = "[kernel]"
			}
			wantModules = append(wantModules, m)
		}
		if !slices.Equal(names, wantNames) || !slices.Equal(modules, wantModules) {
			t.Errorf("sample %d frames\n got %v in %v\nwant %v in %v", i, names, modules, wantNames, wantModules)
		}
	}
	// The inlined pump and its caller share one location.
	pump := got.Sample[3].Location[0]
	if len(pump.Line) != 2 || pump.Line[0].Function.Name != "vpn::Session::pump" || pump.Line[0].Line != 88 ||
		pump.Line[0].Function.Filename != "session.cpp" || pump.Address != 0x31a10 {
		t.Errorf("inlined location = %+v", pump)
	}
	if got.Mapping[0].File != vpnserver {
		t.Errorf("first mapping %s, want the executable %s", got.Mapping[0].File, vpnserver)
	}
	// One location per distinct PC, one mapping per module.
	var files []string
	for _, m := range got.Mapping {
		files = append(files, m.File)
		if m.File == libc && m.BuildID != "c047672cae7964324658491e7dee26748ae5d2f8" {
			t.Errorf("libc mapping build ID %q", m.BuildID)
		}
		if want := m.File != vpnserver && m.File != libnat; m.HasFunctions != want {
			t.Errorf("mapping %s HasFunctions = %v, want %v", m.File, m.HasFunctions, want)
		}
	}
	slices.Sort(files)
	if want := []string{libnat, vpnserver, libc, "[kernel]"}; !slices.Equal(files, want) {
		t.Errorf("mappings %v, want %v", files, want)
	}
	if n := len(got.Location); n != 22 {
		t.Errorf("%d locations, want 22", n)
	}
}

// TestPprofTool reads the profile with the real pprof, as a user would.
func TestPprofTool(t *testing.T) {
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		t.Skipf("no go tool to run pprof with: %v", err)
	}
	path := filepath.Join(t.TempDir(), "cpu.pb.gz")
	if err := WriteFile(path, seedProfile()); err != nil {
		t.Fatal(err)
	}
	pprof := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(gobin, append([]string{"tool", "pprof"}, append(args, path)...)...)
		cmd.Env = append(os.Environ(), "PPROF_BINARY_PATH="+t.TempDir()) // never symbolize from the host
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("pprof %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	top := pprof("-top", "-nodecount=20")
	t.Logf("pprof -top:\n%s", top)
	lines := strings.Split(top, "\n")
	i := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, "flat%") })
	if i < 0 || i+1 >= len(lines) || !strings.HasSuffix(strings.TrimSpace(lines[i+1]), "__skb_try_recv_datagram") {
		t.Errorf("pprof -top does not list __skb_try_recv_datagram first:\n%s", top)
	}
	for _, want := range []string{"vpnserver+0x4a1f3", "vpn::Session::pump", "Type: cpu"} {
		if !strings.Contains(top, want) {
			t.Errorf("pprof -top lacks %q:\n%s", want, top)
		}
	}
	tags := pprof("-tags")
	t.Logf("pprof -tags:\n%s", tags)
	for _, want := range []string{"thread", "NatThreadMain", "tid", "4677"} {
		if !strings.Contains(tags, want) {
			t.Errorf("pprof -tags lacks %q:\n%s", want, tags)
		}
	}
}

func TestPprofDeterministic(t *testing.T) {
	var a, b bytes.Buffer
	if err := WritePprof(&a, seedProfile()); err != nil {
		t.Fatal(err)
	}
	if err := WritePprof(&b, seedProfile()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two writes of one profile differ")
	}
}
