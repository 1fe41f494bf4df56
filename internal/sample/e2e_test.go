package sample_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/sample"
	"github.com/cpuwhy/cpuwhy/test/scenario"
)

// busypoll is a running busypoll scenario with its recvfrom counter.
type busypoll struct {
	pid       int
	countFile string
}

func (b *busypoll) count(t *testing.T) uint64 {
	t.Helper()
	os.Remove(b.countFile)
	if err := syscall.Kill(b.pid, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		data, err := os.ReadFile(b.countFile)
		if err == nil && strings.HasSuffix(string(data), "\n") {
			n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(string(data), "calls="), "\n"), 10, 64)
			if err != nil {
				t.Fatalf("count file holds %q: %v", data, err)
			}
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("no count file 5s after SIGUSR1: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
}

// rate is recvfrom calls per second over d.
func (b *busypoll) rate(t *testing.T, d time.Duration) float64 {
	start := time.Now()
	before := b.count(t)
	time.Sleep(d)
	return float64(b.count(t)-before) / time.Since(start).Seconds()
}

func TestRecordBusypollKernel(t *testing.T) {
	checkNoLeak(t)
	file := filepath.Join(t.TempDir(), "count")
	cmd := scenario.Build(t, "busypoll").Start(t, []string{"SCENARIO_COUNT_FILE=" + file})
	b := &busypoll{pid: cmd.Process.Pid, countFile: file}
	ksyms, err := sample.ReadKernelSymbols(proc.FS{})
	if err != nil {
		t.Fatal(err)
	}
	if ksyms.Restricted {
		t.Log("kernel addresses are hidden by kptr_restrict: kernel frames print as [kernel]")
	}

	// Best of three windows each, alternated, because on a small shared
	// machine any one window may lose the CPU to something else.
	var untraced, traced float64
	for range 3 {
		untraced = max(untraced, b.rate(t, 500*time.Millisecond))
		done := make(chan struct{})
		go func() {
			defer close(done)
			sample.Record(context.Background(), b.pid, sample.Options{Duration: 800 * time.Millisecond, Kernel: true})
		}()
		time.Sleep(150 * time.Millisecond) // let every event open
		traced = max(traced, b.rate(t, 500*time.Millisecond))
		<-done
	}
	t.Logf("busypoll recvfrom rate, best of 3: %.0f/s untraced, %.0f/s while sampled at 99 Hz with kernel callchains: %.3f of untraced",
		untraced, traced, traced/untraced)

	rec := record(t, b.pid, sample.Options{Duration: time.Second, Kernel: true})
	if !rec.KernelSampled {
		t.Fatal("kernel-mode samples were refused")
	}
	want := []string{"__sys_recvfrom", "__x64_sys_recvfrom", "udp_recvmsg", "__arm64_sys_recvfrom", "sock_recvmsg", "inet_recvmsg"}
	withChain, withRecv := 0, 0
	seen, others := map[string]int{}, map[string]int{}
	for _, s := range rec.Samples {
		if len(s.Kernel) == 0 {
			continue
		}
		withChain++
		hit := false
		for _, pc := range s.Kernel {
			name := ksyms.Name(pc)
			seen[name]++
			hit = hit || slices.Contains(want, name)
		}
		if hit {
			withRecv++
		} else {
			others[ksyms.Name(s.Kernel[0])]++
		}
	}
	t.Logf("%d of %d samples have a kernel callchain, %d of them through recvfrom; the others were in %v", withChain, len(rec.Samples), withRecv, others)
	// The rest are in the system call's entry and exit paths, outside
	// recvfrom proper.
	if withRecv == 0 || withRecv < withChain/4 {
		t.Errorf("%d of %d kernel callchains pass through recvfrom; kernel frames seen: %v", withRecv, withChain, seen)
	}
}

// buildFixture compiles testdata/NAME.c.
func buildFixture(t *testing.T, name string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), name)
	if b, err := exec.Command("gcc", "-O2", "-Wall", "-pthread", "-o", out, filepath.Join("testdata", name+".c")).CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", name, err, b)
	}
	return out
}

func startFixture(t *testing.T, path string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(path, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("%s: first line %q, %v", path, line, err)
	}
	return cmd
}

func TestRecordFollowsNewThreads(t *testing.T) {
	checkNoLeak(t)
	cmd := startFixture(t, buildFixture(t, "latethread"), "300")
	start := time.Now()
	rec := record(t, cmd.Process.Pid, sample.Options{Duration: 1300 * time.Millisecond})
	late := 0
	for _, s := range rec.Samples {
		if rec.Threads[s.TID] == "latecomer" {
			late++
		}
	}
	// The thread runs for about a second of the recording, minus up to
	// one rescan interval before we see it: about 90 samples on an idle
	// machine, fewer when it shares the CPU.
	t.Logf("%d samples from the thread started 300 ms into the recording (of %d in %v)", late, len(rec.Samples), time.Since(start))
	if late < 10 {
		t.Errorf("only %d samples from the thread started during the recording", late)
	}
}

// TestRecordSpawner samples a process whose threads live for microseconds
// and which exits on its own mid-recording: the recording ends early with
// a note, not an error, and every event of a gone thread is closed.
func TestRecordSpawnerExits(t *testing.T) {
	checkNoLeak(t)
	cmd := scenario.Build(t, "spawner").Start(t, nil, "700")
	go cmd.Wait() // reap it, so the pidfd sees the exit
	rec := record(t, cmd.Process.Pid, sample.Options{Duration: 5 * time.Second})
	if rec.Duration > 2*time.Second {
		t.Errorf("recording lasted %v after the target exited at 700 ms", rec.Duration)
	}
	if !slices.ContainsFunc(rec.Notes, func(n string) bool { return strings.Contains(n, "exited") }) {
		t.Errorf("no note that the target exited: %q", rec.Notes)
	}
}
