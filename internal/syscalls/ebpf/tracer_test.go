package ebpf_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	cebpf "github.com/cilium/ebpf"

	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/syscalls"
	"github.com/cpuwhy/cpuwhy/internal/syscalls/ebpf"
	"github.com/cpuwhy/cpuwhy/internal/sysno"
	"github.com/cpuwhy/cpuwhy/test/privtest"
	"github.com/cpuwhy/cpuwhy/test/scenario"
)

// The re-executed test binary is the tracer that TestTracerKilled kills.
const envTraceChild = "CPUWHY_EBPF_TRACE_CHILD"

func TestMain(m *testing.M) {
	if pid := os.Getenv(envTraceChild); pid != "" {
		os.Exit(traceChild(pid))
	}
	os.Exit(m.Run())
}

// traceChild traces pid for a minute, printing the IDs of its programs
// once attached: the parent kills it long before the minute is over.
func traceChild(pidText string) int {
	pid, err := strconv.Atoi(pidText)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	tr := ebpf.WithHooks(ebpf.New(), func(ids []cebpf.ProgramID) {
		fmt.Println("attached", ids)
	}, nil)
	_, err = tr.Trace(context.Background(), pid, syscalls.Options{Duration: time.Minute, TimeEvery: 16, Stacks: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

var recvfrom = sysno.Number(runtime.GOARCH, "recvfrom")

const eagain = 11

// socketFD returns the scenario's one socket descriptor.
func socketFD(t *testing.T, b *scenario.Busypoll) int {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", b.PID())
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if target, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(target, "socket:") {
			fd, _ := strconv.Atoi(e.Name())
			return fd
		}
	}
	t.Fatalf("no socket among the descriptors of %d", b.PID())
	return -1
}

// trace runs tr, skipping the test only when BPF truly cannot load here.
func trace(t *testing.T, tr *ebpf.Tracer, pid int, opts syscalls.Options) *syscalls.Profile {
	t.Helper()
	p, err := tr.Trace(context.Background(), pid, opts)
	if err != nil {
		if errors.Is(err, syscalls.ErrNotSupported) && (errors.Is(err, os.ErrPermission) || errors.Is(err, cebpf.ErrNotSupported)) {
			privtest.Require(t, err.Error())
		}
		t.Fatal(err)
	}
	return p
}

// tidNamed returns the thread of p named name.
func tidNamed(t *testing.T, p *syscalls.Profile, name string) int {
	t.Helper()
	for tid, n := range p.Threads {
		if n == name {
			return tid
		}
	}
	t.Fatalf("no thread named %s in %v", name, p.Threads)
	return 0
}

// countWindow traces busypoll bp with tr and returns the profile and
// the scenario's own count of its recvfrom calls over the trace: at least
// lo, read inside the traced window (right after attaching and right
// before detaching, so that loading and detaching do not count), and at
// most hi, read before the trace begins and after it ends. Reading the
// count takes a signal and its handler: on a loaded machine tens of
// milliseconds of calls pass between attaching and the reading, which the
// tracer sees and lo leaves out, while hi includes them.
func countWindow(t *testing.T, tr *ebpf.Tracer, bp *scenario.Busypoll, opts syscalls.Options) (p *syscalls.Profile, lo, hi uint64) {
	t.Helper()
	var before, after uint64
	first := bp.Calls(t)
	tr = ebpf.WithHooks(tr, func([]cebpf.ProgramID) { before = bp.Calls(t) }, func() { after = bp.Calls(t) })
	p = trace(t, tr, bp.PID(), opts)
	last := bp.Calls(t)
	return p, after - before, last - first
}

// checkCount fails t unless the traced count of calls is within 2% of
// what the scenario counted, between lo and hi (countWindow): a count
// carried over from another trace (its pending run, millions of calls),
// or calls lost, would be far out.
func checkCount(t *testing.T, what string, traced, lo, hi uint64) {
	t.Helper()
	t.Logf("%s: traced %d, the scenario made %d to %d", what, traced, lo, hi)
	if lo == 0 || float64(traced) < 0.98*float64(lo) || float64(traced) > 1.02*float64(hi) {
		t.Errorf("%s: traced %d recvfrom calls, the scenario made %d to %d: more than 2%% apart", what, traced, lo, hi)
	}
}

// TestBusypollCount checks the count against the scenario's own.
func TestBusypollCount(t *testing.T) {
	b := scenario.StartBusypoll(t)
	fd := socketFD(t, b)
	p, lo, hi := countWindow(t, ebpf.New(), b, syscalls.Options{Duration: 2 * time.Second, TimeEvery: 16, Exact: true})

	if p.Ended != "" || p.Mechanism != syscalls.EBPF || p.PID != b.PID() {
		t.Errorf("Ended %q, Mechanism %q, PID %d", p.Ended, p.Mechanism, p.PID)
	}
	nat := tidNamed(t, p, "NatThreadMain")
	key := syscalls.Key{TID: nat, Nr: recvfrom, Errno: eagain, FD: fd}
	st := p.Stats[key]
	if st == nil {
		t.Fatalf("no stat for %+v; have %v", key, p.Stats)
	}
	checkCount(t, "recvfrom", st.Count, lo, hi)
	t.Logf("timed %d, dropped %d", st.Timed, p.Dropped)
	if p.Dropped != 0 {
		t.Errorf("Dropped = %d with the default table", p.Dropped)
	}
	for k, s := range p.Stats {
		if k.TID == nat && k != key {
			t.Errorf("NatThreadMain made an unexpected call: %+v %+v", k, s)
		}
	}
}

func TestBusypollTimed(t *testing.T) {
	b := scenario.StartBusypoll(t)
	const every = 16
	// Exact: the timing slices of an exact count (a sampled count times
	// inside its own slices, TestCountSlices).
	p := trace(t, ebpf.New(), b.PID(), syscalls.Options{Duration: time.Second, TimeEvery: every, Exact: true})
	nat := tidNamed(t, p, "NatThreadMain")
	st := p.Stats[syscalls.Key{TID: nat, Nr: recvfrom, Errno: eagain, FD: socketFD(t, b)}]
	if st == nil || st.Count == 0 {
		t.Fatalf("no recvfrom calls of NatThreadMain in %v", p.Stats)
	}
	for k, s := range p.Stats {
		var sum uint64
		lo, hi := -1, 0
		for i, n := range s.Hist {
			sum += n
			if n > 0 {
				if lo < 0 {
					lo = i
				}
				hi = i
			}
		}
		if sum != s.Timed {
			t.Errorf("%+v: histogram sums to %d, Timed is %d", k, sum, s.Timed)
		}
		if s.Timed > s.Count {
			t.Errorf("%+v: Timed %d > Count %d", k, s.Timed, s.Count)
		}
		// The mean lies within the buckets that hold calls.
		if s.Timed > 0 {
			mean := s.TotalNs / s.Timed
			if mean < 1<<lo>>1 || (hi < syscalls.HistBuckets-1 && mean >= 1<<(hi+1)) {
				t.Errorf("%+v: mean %d ns outside buckets %d..%d", k, mean, lo, hi)
			}
		}
	}
	// Every call in 1/16 of the window: time slices, so the share of calls
	// timed follows the share of time, less the slices' attach latency and
	// any cut short by the window's end, and more or less as the poller got
	// the CPU inside the slices and outside them on a loaded machine.
	ratio := float64(st.Count) / float64(st.Timed)
	t.Logf("recvfrom: %d calls, %d timed (1 in %.1f), mean %d ns", st.Count, st.Timed, ratio, st.TotalNs/max(st.Timed, 1))
	if st.Timed == 0 || ratio < every*0.5 || ratio > every*2 {
		t.Errorf("timed 1 call in %.1f, want about 1 in %d", ratio, every)
	}
	if !hasNote(p, "sample") {
		t.Errorf("no note on sampling in %q", p.Notes)
	}
}

func hasNote(p *syscalls.Profile, word string) bool {
	for _, n := range p.Notes {
		if strings.Contains(n, word) {
			return true
		}
	}
	return false
}

func TestUntimed(t *testing.T) {
	b := scenario.StartBusypoll(t)
	p := trace(t, ebpf.New(), b.PID(), syscalls.Options{Duration: 500 * time.Millisecond})
	var count uint64
	for k, s := range p.Stats {
		count += s.Count
		if s.Timed != 0 {
			t.Errorf("%+v timed %d calls with TimeEvery 0", k, s.Timed)
		}
	}
	if count == 0 {
		t.Error("no calls counted")
	}
}

func TestTargetExits(t *testing.T) {
	b := scenario.StartBusypoll(t)
	const window = 10 * time.Second
	killed := make(chan time.Time, 1)
	tr := ebpf.WithHooks(ebpf.New(), func([]cebpf.ProgramID) {
		time.AfterFunc(300*time.Millisecond, func() {
			b.Cmd.Process.Kill()
			killed <- time.Now()
		})
	}, nil)
	p := trace(t, tr, b.PID(), syscalls.Options{Duration: window, TimeEvery: 16})
	// Ended by the exit, not by the window: from the kill (after the
	// programs are loaded, which takes a second on a slow or loaded
	// machine) to the end, the tracer only notices the exit (polled every
	// 100 ms) and reads its maps, at any speed well within half the
	// window.
	took := time.Since(<-killed)
	t.Logf("Trace returned %v after the kill, window %v", took.Round(time.Millisecond), p.Duration.Round(time.Millisecond))
	if took > window/2 {
		t.Errorf("Trace returned %v after the target was killed (window %v)", took, window)
	}
	if want := fmt.Sprintf("process %d exited after", b.PID()); !strings.HasPrefix(p.Ended, want) {
		t.Errorf("Ended = %q, want %q...", p.Ended, want)
	}
	if p.Duration <= 0 || p.Duration > 300*time.Millisecond+window/2 {
		t.Errorf("Duration = %v", p.Duration)
	}
	var count uint64
	for k, s := range p.Stats {
		if k.Nr == recvfrom {
			count += s.Count
		}
		if p.Threads[k.TID] == "" {
			t.Errorf("thread %d has no name", k.TID)
		}
	}
	if count == 0 {
		t.Errorf("partial profile has no recvfrom calls: %v", p.Stats)
	}
}

func TestTargetGone(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	_, err := ebpf.New().Trace(context.Background(), cmd.Process.Pid, syscalls.Options{Duration: time.Second})
	if err == nil || errors.Is(err, syscalls.ErrNotSupported) {
		t.Errorf("tracing a reaped process: %v, want an error that is not ErrNotSupported", err)
	}
}

func TestContextEnds(t *testing.T) {
	b := scenario.StartBusypoll(t)
	const window = 10 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Canceled 300 ms after attaching, not after starting: loading the
	// programs alone may take longer than that on a slow or loaded
	// machine, and the profile would be empty.
	canceled := make(chan time.Time, 1)
	tr := ebpf.WithHooks(ebpf.New(), func([]cebpf.ProgramID) {
		time.AfterFunc(300*time.Millisecond, func() {
			cancel()
			canceled <- time.Now()
		})
	}, nil)
	p, err := tr.Trace(ctx, b.PID(), syscalls.Options{Duration: window})
	if err != nil {
		if errors.Is(err, syscalls.ErrNotSupported) {
			privtest.Require(t, err.Error())
		}
		t.Fatal(err)
	}
	// Ended by the context, not by the window: detaching and reading
	// the maps take milliseconds at any speed; half the window only
	// catches a tracer that did not stop.
	took := time.Since(<-canceled)
	t.Logf("Trace returned %v after the cancel, window %v", took.Round(time.Millisecond), p.Duration.Round(time.Millisecond))
	if took > window/2 || p.Ended != "" || len(p.Stats) == 0 {
		t.Errorf("took %v after the cancel (window %v), Ended %q, %d stats", took, window, p.Ended, len(p.Stats))
	}
}

func TestDropped(t *testing.T) {
	b := scenario.StartBusypoll(t)
	// The signal handler's open, write, close and rename are keys of
	// their own, and only two fit: one in stats, one in spill, each as
	// big as MaxKeys.
	tr := ebpf.WithHooks(ebpf.New(), func([]cebpf.ProgramID) {
		for range 3 {
			b.Calls(t)
		}
	}, nil)
	p := trace(t, tr, b.PID(), syscalls.Options{Duration: 300 * time.Millisecond, MaxKeys: 1})
	if len(p.Stats) == 0 || len(p.Stats) > 2 {
		t.Errorf("%d keys in two tables of 1", len(p.Stats))
	}
	if p.Dropped == 0 {
		t.Errorf("Dropped = 0 with %v", p.Stats)
	}
	if !hasNote(p, "not counted") {
		t.Errorf("no note on dropped calls in %q", p.Notes)
	}
}

func TestStacks(t *testing.T) {
	b := scenario.StartBusypoll(t)
	p := trace(t, ebpf.New(), b.PID(), syscalls.Options{Duration: time.Second, TimeEvery: 16, Stacks: true})
	nat := tidNamed(t, p, "NatThreadMain")
	samples := p.Stacks[syscalls.StackKey{TID: nat, Nr: recvfrom}]
	deepest := 0
	for _, s := range samples {
		deepest = max(deepest, len(s.PCs))
		if s.Count == 0 {
			t.Errorf("stack %x seen 0 times", s.PCs)
		}
	}
	t.Logf("%d stacks of NatThreadMain's recvfrom, deepest %d frames: %+v", len(samples), deepest, samples)
	if deepest < 2 {
		t.Errorf("no stack of 2 frames or more for NatThreadMain's recvfrom: %v", samples)
	}
	// The scenario is built without frame pointers, as libc is: the
	// second frame is the caller the tracer recovers, RecvFrom.
	maps, err := proc.FS{}.Maps(b.PID())
	if err != nil {
		t.Fatal(err)
	}
	inLibnat := false
	for _, s := range samples {
		for _, m := range maps {
			if len(s.PCs) > 1 && m.Exec() && strings.HasSuffix(m.Path, "/libnat.so") && s.PCs[1] >= m.Start && s.PCs[1] < m.End {
				inLibnat = true
			}
		}
	}
	if !inLibnat {
		t.Errorf("no stack of NatThreadMain's recvfrom has libnat.so (RecvFrom) as its second frame: %v", samples)
	}
	if !hasNote(p, "frame pointers") {
		t.Errorf("no note on frame pointers in %q", p.Notes)
	}
}

// TestTracerKilled kills a tracer mid-window: the kernel must detach its
// programs with its file descriptors, and the target run on at its
// untraced rate.
func TestTracerKilled(t *testing.T) {
	b := scenario.StartBusypoll(t)
	untraced := b.Rate(t, 300*time.Millisecond)

	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), envTraceChild+"="+strconv.Itoa(b.PID()))
	child.Stderr = os.Stderr
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		child.Wait()
		if privtest.Required() || child.ProcessState.ExitCode() != 1 {
			t.Fatalf("tracer child: %v", err)
		}
		privtest.Require(t, "the tracer child could not trace (see its error above)")
	}
	var ids []cebpf.ProgramID
	for _, f := range strings.Fields(strings.Trim(strings.TrimPrefix(line, "attached "), "[]\n")) {
		id, err := strconv.ParseUint(f, 10, 32)
		if err != nil {
			t.Fatalf("child said %q", line)
		}
		ids = append(ids, cebpf.ProgramID(id))
	}
	traced := b.Rate(t, 300*time.Millisecond)
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	child.Wait()

	// The programs go when their last reference does, after an RCU grace
	// period.
	deadline := time.Now().Add(5 * time.Second)
	for _, id := range ids {
		for {
			prog, err := cebpf.NewProgramFromID(id)
			if err != nil {
				break
			}
			prog.Close()
			if time.Now().After(deadline) {
				t.Fatalf("program %d still loaded 5s after its tracer was killed", id)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if err := syscall.Kill(b.PID(), 0); err != nil {
		t.Fatalf("busypoll died with its tracer: %v", err)
	}
	after := b.Rate(t, 300*time.Millisecond)
	t.Logf("recvfrom/s: untraced %.0f, traced (stacks, 1 in 16 timed) %.0f, after the tracer was killed %.0f", untraced, traced, after)
	// That the programs are gone is checked exactly above; the speed only
	// has to show busypoll is not crippled. A finer bound is noise on the
	// small shared machines tests run on (busypoll's speed drifts by up to
	// 30% between seconds with nothing traced).
	if after < untraced/2 {
		t.Errorf("after the tracer was killed busypoll runs at %.0f calls/s, untraced it ran at %.0f", after, untraced)
	}
}

// TestTableSizeIsNotMissingBPF checks that a table size the kernel
// refuses is an error of its own, never syscalls.ErrNotSupported: that
// would send the caller to ptrace, which stops the target at every call,
// because of a number someone typed (`--max-keys 99999999999` once did).
// Trace refuses sizes past syscalls.KeysLimit before asking the kernel;
// past 2^31 the kernel refuses a hash table itself (E2BIG).
func TestTableSizeIsNotMissingBPF(t *testing.T) {
	self := os.Getpid()
	for _, keys := range []int{syscalls.KeysLimit + 1, 99999999999, -1} {
		_, err := ebpf.New().Trace(context.Background(), self, syscalls.Options{Duration: time.Second, MaxKeys: keys})
		if !errors.Is(err, syscalls.ErrOptions) || errors.Is(err, syscalls.ErrNotSupported) {
			t.Errorf("Trace with MaxKeys %d: %v; want syscalls.ErrOptions and no ErrNotSupported", keys, err)
		}
	}
	if _, err := ebpf.New().Trace(context.Background(), self, syscalls.Options{Duration: time.Second, TimeEvery: syscalls.TimeEveryLimit + 1}); !errors.Is(err, syscalls.ErrOptions) {
		t.Errorf("Trace with TimeEvery past the limit: %v; want syscalls.ErrOptions", err)
	}

	if err := ebpf.LoadError(self, syscalls.Options{MaxKeys: syscalls.DefaultMaxKeys}); err != nil {
		if errors.Is(err, syscalls.ErrNotSupported) && (errors.Is(err, os.ErrPermission) || errors.Is(err, cebpf.ErrNotSupported)) {
			privtest.Require(t, err.Error())
		}
		t.Fatalf("loading with the default table: %v", err)
	}
	err := ebpf.LoadError(self, syscalls.Options{MaxKeys: 1<<31 + 1})
	if err == nil {
		t.Fatal("the kernel made a hash table of 2^31+1 keys")
	}
	if errors.Is(err, syscalls.ErrNotSupported) || !strings.Contains(err.Error(), "2147483649") {
		t.Errorf("a table the kernel refuses: %v; want an error naming its size, not ErrNotSupported", err)
	}
	if testing.Verbose() {
		t.Logf("a table the kernel refuses: %v", err)
	}
}
