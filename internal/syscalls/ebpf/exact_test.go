package ebpf_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	cebpf "github.com/cilium/ebpf"

	"github.com/cpuwhy/cpuwhy/internal/syscalls"
	"github.com/cpuwhy/cpuwhy/internal/syscalls/ebpf"
	"github.com/cpuwhy/cpuwhy/internal/sysno"
	"github.com/cpuwhy/cpuwhy/test/privtest"
	"github.com/cpuwhy/cpuwhy/test/scenario"
)

// requireBPF skips (or fails, when privileges are required) when BPF
// truly cannot load here.
func requireBPF(t *testing.T, err error) {
	t.Helper()
	if errors.Is(err, syscalls.ErrNotSupported) && (errors.Is(err, os.ErrPermission) || errors.Is(err, cebpf.ErrNotSupported)) {
		privtest.Require(t, err.Error())
	}
}

// exactCalls runs the exactcalls scenario with args, traces it with
// opts, and has it make its calls inside the window: told to start right
// after the programs attach, and waited for before they detach. The
// calls are then all in the profile, or counted as dropped.
func exactCalls(t *testing.T, opts syscalls.Options, args ...string) (*syscalls.Profile, int) {
	t.Helper()
	prog := scenario.Build(t, "exactcalls")
	cmd := exec.Command(prog.Path, args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	lines := bufio.NewReader(stdout)
	expect := func(want string) {
		t.Helper()
		line, err := lines.ReadString('\n')
		if err != nil || line != want+"\n" {
			t.Fatalf("exactcalls said %q (%v), want %q", line, err, want)
		}
	}
	expect("ready")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tr := ebpf.WithHooks(ebpf.New(), func([]cebpf.ProgramID) {
		io.WriteString(stdin, "go\n")
		expect("done")
		cancel()
	}, nil)
	opts.Duration = time.Minute // ended by the cancel once the calls are made
	// Every call counted: the scenario makes them as fast as it can,
	// which a default trace would count in slices.
	opts.Exact = true
	p, err := tr.Trace(ctx, cmd.Process.Pid, opts)
	if err != nil {
		requireBPF(t, err)
		t.Fatal(err)
	}
	return p, cmd.Process.Pid
}

// TestLastKeyCacheLosesNoCount: sys_exit folds a run of one key into one
// update of the table, keeping the run's count in a per-CPU slot until
// another key comes (or user space reads it after detaching). A known
// number of calls, in one long run, in two keys taking turns, and in runs
// of 7 and 5, is counted exactly: not one call lost or counted twice,
// bytes included, whichever CPU each thread ran on.
func TestLastKeyCacheLosesNoCount(t *testing.T) {
	const n = 120_000
	for _, c := range []struct {
		name string
		opts syscalls.Options
	}{
		{"count-only", syscalls.Options{TimeEvery: 0}},
		// With stacks the entry probe stays attached, and a random
		// sixteenth of the calls, timed, bypass the slot: runs are
		// broken at random.
		{"one-in-16-timed", syscalls.Options{TimeEvery: 16, Stacks: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, _ := exactCalls(t, c.opts, "runs", strconv.Itoa(n))
			arch := runtime.GOARCH
			getppid, read, fcntl := sysno.Number(arch, "getppid"), sysno.Number(arch, "read"), sysno.Number(arch, "fcntl")
			const ebadf = 9
			type row struct {
				thread string
				nr     int
				errno  int
				fd     int
				count  uint64
			}
			want := []row{
				{"runner", getppid, 0, syscalls.NoFD, n},
				{"burster", fcntl, ebadf, 1000, n / 12 * 7},
				{"burster", fcntl, ebadf, 1001, n / 12 * 5},
			}
			for _, w := range want {
				tid := tidNamed(t, p, w.thread)
				k := syscalls.Key{TID: tid, Nr: w.nr, Errno: w.errno, FD: w.fd}
				st := p.Stats[k]
				if st == nil || st.Count != w.count {
					t.Errorf("%s %+v: %v calls counted, made %d", w.thread, k, st, w.count)
				}
			}
			alt := tidNamed(t, p, "alternator")
			var reads []uint64
			for k, st := range p.Stats {
				if k.TID == alt && k.Nr == read && k.Errno == 0 && !k.Zero {
					reads = append(reads, st.Count)
					if st.Bytes != st.Count {
						t.Errorf("alternator's reads of fd %d: %d bytes for %d one-byte reads", k.FD, st.Bytes, st.Count)
					}
				}
			}
			if len(reads) != 2 || reads[0] != n || reads[1] != n {
				t.Errorf("alternator's reads per fd: %v, made %d on each of 2", reads, n)
			}
			if p.Dropped != 0 {
				t.Errorf("%d calls dropped", p.Dropped)
			}
			t.Logf("notes: %s", strings.Join(p.Notes, "; "))
		})
	}
}

// TestBurstOfNewKeys: one thread opens 5,000 sockets and then calls
// recvfrom on each in turn, 5,000 new keys in a burst (SoftEther's
// SecureNAT going round its sessions). The table is not preallocated and
// the kernel's allocator for it runs dry in such a burst (11 to 49,000
// calls were lost); the calls whose key it cannot take go to a
// preallocated table as big, so below the table's size not one is lost.
// Above it (MaxKeys 2,000, for 5,000 keys) the calls lost are counted,
// exactly: with those counted they make every call the thread made.
func TestBurstOfNewKeys(t *testing.T) {
	const sockets, rounds = 5000, 4
	recvfrom := sysno.Number(runtime.GOARCH, "recvfrom")
	for _, c := range []struct {
		name    string
		maxKeys int
	}{
		{"below-capacity", 0}, // the default, 16,384
		{"above-capacity", 2000},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, _ := exactCalls(t, syscalls.Options{MaxKeys: c.maxKeys}, "sockets", strconv.Itoa(sockets), strconv.Itoa(rounds))
			poller := tidNamed(t, p, "poller")
			var counted uint64
			keys, short := 0, 0
			for k, st := range p.Stats {
				if k.TID != poller || k.Nr != recvfrom {
					continue
				}
				keys++
				counted += st.Count
				if st.Count != rounds {
					short++
				}
			}
			made := uint64(sockets * rounds)
			t.Logf("%d keys, %d calls counted of %d made, %d dropped; notes: %s", keys, counted, made, p.Dropped, strings.Join(p.Notes, "; "))
			if c.maxKeys == 0 {
				if counted != made || keys != sockets || short != 0 || p.Dropped != 0 {
					t.Errorf("%d recvfrom calls counted on %d keys (%d not counted %d times), %d dropped: made %d, %d on each of %d fds",
						counted, keys, short, rounds, p.Dropped, made, rounds, sockets)
				}
				return
			}
			// Dropped also counts the calls of the main thread that find
			// the table full (its read returning "go", its wake of the
			// poller, the poller's own return from that wait, the write
			// of "done"): at most 4 beyond the poller's.
			if counted+p.Dropped < made || counted+p.Dropped > made+4 || p.Dropped == 0 {
				t.Errorf("%d counted + %d dropped, for %d recvfrom calls made (and up to 4 others)", counted, p.Dropped, made)
			}
			if !hasNote(p, "not counted") {
				t.Errorf("no note on the calls not counted: %q", p.Notes)
			}
		})
	}
}
