package scenario_test

import (
	"debug/elf"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/test/scenario"
)

// threadNames returns the comm of every thread of pid.
func threadNames(t *testing.T, pid int) []string {
	t.Helper()
	tasks, err := filepath.Glob(filepath.Join("/proc", strconv.Itoa(pid), "task", "*", "comm"))
	if err != nil || len(tasks) == 0 {
		t.Fatalf("listing threads of %d: %v", pid, err)
	}
	var names []string
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, strings.TrimSuffix(string(b), "\n"))
	}
	return names
}

func TestNames(t *testing.T) {
	want := []string{"busypoll", "churn", "compute", "cxxhot", "echoserver", "exactcalls", "execphase", "exitontrace", "gcpressure", "gostripped", "hostile",
		"idle", "javahot", "jitmap", "kernelbound", "leaderexit", "lockstorm", "nodehot", "refused", "spawner", "spinyield", "threads", "timerstorm", "tracer", "udpflood", "writestorm", "zeropoll"}
	if got := scenario.Names(); !slices.Equal(got, want) {
		t.Errorf("Names() = %q, want %q", got, want)
	}
}

func TestScenariosRun(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		thread string // a thread that must exist
		tasks  int    // number of threads, 0 to not check
	}{
		{name: "busypoll", thread: "NatThreadMain", tasks: 2},
		{name: "compute", thread: "cruncher", tasks: 2},
		{name: "cxxhot", thread: "pump", tasks: 2},
		{name: "gostripped"},
		{name: "hostile", thread: "\x1b[2Jhot\nfake", tasks: 4},
		{name: "idle", thread: "acceptor", tasks: 2},
		{name: "jitmap", args: []string{"nomap"}, thread: "jitter", tasks: 2}, // no map left in /tmp
		{name: "spawner"},
		{name: "threads", args: []string{"50"}, tasks: 51},
		{name: "threads", args: []string{"50", "2"}, thread: "busy", tasks: 51},
	}
	for _, tt := range tests {
		t.Run(strings.Join(append([]string{tt.name}, tt.args...), " "), func(t *testing.T) {
			t.Parallel()
			p := scenario.Build(t, tt.name)
			cmd := p.Start(t, nil, tt.args...)
			names := threadNames(t, cmd.Process.Pid)
			if tt.thread != "" && !slices.Contains(names, tt.thread) {
				t.Errorf("threads are %q, want one named %q", names, tt.thread)
			}
			if tt.tasks != 0 && len(names) != tt.tasks {
				t.Errorf("%d threads, want %d", len(names), tt.tasks)
			}
		})
	}
}

func TestBusypollBinaries(t *testing.T) {
	p := scenario.Build(t, "busypoll")
	if base := filepath.Base(p.Path); base != "vpnserver" {
		t.Errorf("main binary is %s, want vpnserver", base)
	}
	lib, ok := p.Files["libnat.so"]
	if !ok {
		t.Fatalf("Files = %v, want libnat.so", p.Files)
	}
	if filepath.Dir(lib) != filepath.Dir(p.Path) {
		t.Errorf("libnat.so at %s is not beside %s", lib, p.Path)
	}

	main, err := elf.Open(p.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer main.Close()
	if s := main.Section(".symtab"); s != nil {
		t.Error("vpnserver has a .symtab; it must be stripped")
	}
	libs, err := main.ImportedLibraries()
	if err != nil || !slices.Contains(libs, "libnat.so") {
		t.Errorf("vpnserver needs %q (%v), want libnat.so among them", libs, err)
	}

	so, err := elf.Open(lib)
	if err != nil {
		t.Fatal(err)
	}
	defer so.Close()
	syms, err := so.DynamicSymbols()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range syms {
		if s.Name == "RecvFrom" && elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Section != elf.SHN_UNDEF {
			found = true
		}
	}
	if !found {
		t.Error("libnat.so does not define RecvFrom in .dynsym")
	}
}

func TestComputeSymbol(t *testing.T) {
	p := scenario.Build(t, "compute")
	f, err := elf.Open(p.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(syms, func(s elf.Symbol) bool { return s.Name == "crunch_numbers" }) {
		t.Error("compute has no symbol crunch_numbers")
	}
}

func TestHostileSymbol(t *testing.T) {
	p := scenario.Build(t, "hostile")
	f, err := elf.Open(p.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(syms, func(s elf.Symbol) bool { return s.Name == scenario.HostileSymbol }) {
		t.Errorf("hostile has no symbol %q", scenario.HostileSymbol)
	}
}

// readCount sends SIGUSR1 and waits for the count file to be (re)written.
func readCount(t *testing.T, pid int, file string) uint64 {
	t.Helper()
	os.Remove(file)
	if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(file)
		if err == nil {
			s, ok := strings.CutPrefix(string(b), "calls=")
			if !ok || !strings.HasSuffix(s, "\n") {
				t.Fatalf("count file holds %q, want calls=N", b)
			}
			n, err := strconv.ParseUint(strings.TrimSuffix(s, "\n"), 10, 64)
			if err != nil {
				t.Fatalf("count file holds %q: %v", b, err)
			}
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("no count file %s 5s after SIGUSR1: %v", file, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestBusypollCountFile(t *testing.T) {
	p := scenario.Build(t, "busypoll")
	file := filepath.Join(t.TempDir(), "count")
	cmd := p.Start(t, []string{"SCENARIO_COUNT_FILE=" + file})
	// The poller may not have run yet, and on a busy machine it may wait
	// a while for a CPU: wait for a positive count, then for it to grow.
	deadline := time.Now().Add(10 * time.Second)
	first := readCount(t, cmd.Process.Pid, file)
	for first == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		first = readCount(t, cmd.Process.Pid, file)
	}
	second := readCount(t, cmd.Process.Pid, file)
	for second <= first && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		second = readCount(t, cmd.Process.Pid, file)
	}
	if first == 0 || second <= first {
		t.Errorf("counts %d then %d, want a positive, growing count", first, second)
	}
	if _, err := os.Stat(file + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary count file left behind: %v", err)
	}
}

// TestThreadsBusy checks that busy threads really use CPU, which is what
// keeps a tool from skipping the process's threads as idle.
func TestThreadsBusy(t *testing.T) {
	cmd := scenario.Build(t, "threads").Start(t, nil, "20", "2")
	stat := filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "stat")
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(stat)
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if f[11] != "0" || f[12] != "0" { // utime, stime
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("threads with 2 busy threads used no CPU in 5s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestCompileUnknown(t *testing.T) {
	if _, err := scenario.Compile("no-such-scenario"); !errors.Is(err, scenario.ErrUnknown) {
		t.Errorf("Compile(no-such-scenario) = %v, want ErrUnknown", err)
	}
}

func TestBuildUnknown(t *testing.T) {
	ft := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		scenario.Build(ft, "no-such-scenario")
	}()
	<-done
	if !ft.failed {
		t.Error("Build of an unknown scenario did not fail the test")
	}
}

// fatalRecorder records Fatal instead of ending the test; Build calls it
// from its own goroutine, where runtime.Goexit ends only that goroutine.
type fatalRecorder struct {
	testing.TB
	failed bool
}

func (f *fatalRecorder) Helper() {}
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.failed = true
	runtime.Goexit()
}

func TestRefusedErrorLoop(t *testing.T) {
	countFile := filepath.Join(t.TempDir(), "count")
	cmd := scenario.Build(t, "refused").Start(t, []string{"SCENARIO_COUNT_FILE=" + countFile})
	time.Sleep(200 * time.Millisecond)
	counts := map[string]uint64{}
	deadline := time.Now().Add(5 * time.Second)
	for len(counts) == 0 && time.Now().Before(deadline) {
		if err := cmd.Process.Signal(syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		data, err := os.ReadFile(countFile)
		if err != nil {
			continue
		}
		for _, field := range strings.Fields(string(data)) {
			k, v, _ := strings.Cut(field, "=")
			n, _ := strconv.ParseUint(v, 10, 64)
			counts[k] = n
		}
	}
	// Each send draws an ICMP unreachable, so the error loop shows as
	// ECONNREFUSED on both calls; nothing else may fail.
	if counts["recv_refused"] == 0 || counts["send_refused"]+counts["send"] == 0 || counts["recv_other"] != 0 {
		t.Errorf("counts %v: want ECONNREFUSED from recv, sends, and no other errors", counts)
	}
	if names := threadNames(t, cmd.Process.Pid); !slices.Contains(names, "UdpClient") {
		t.Errorf("threads %q lack UdpClient", names)
	}
}
