package target

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/test/scenario"
)

func TestSpecValidate(t *testing.T) {
	tests := []struct {
		spec Spec
		ok   bool
	}{
		{Spec{}, true},
		{Spec{PID: 1}, true},
		{Spec{Container: "vpn"}, true},
		{Spec{Container: "vpn", NsPID: 1}, true},
		{Spec{Name: "vpn.*"}, true},
		{Spec{PID: 1, Name: "x"}, false},
		{Spec{Container: "vpn", Name: "x"}, false},
		{Spec{NsPID: 1}, false},
		{Spec{PID: -3}, false},
		{Spec{Name: "("}, false},
	}
	for _, tt := range tests {
		err := tt.spec.Validate()
		if (err == nil) != tt.ok {
			t.Errorf("%+v: Validate() = %v, want ok=%v", tt.spec, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrUsage) {
			t.Errorf("%+v: error %v is not ErrUsage", tt.spec, err)
		}
	}
}

// start runs a scenario on the host until the test ends.
func start(t *testing.T, name string, args ...string) int {
	t.Helper()
	return scenario.Build(t, name).Start(t, nil, args...).Process.Pid
}

func TestSelect(t *testing.T) {
	// compute under a name of this test's own: other packages' tests run
	// compute at the same time, which would make the name ambiguous.
	prog := scenario.Build(t, "compute")
	name := fmt.Sprintf("sel%d", os.Getpid())
	link := filepath.Join(t.TempDir(), name)
	if err := os.Symlink(prog.Path, link); err != nil {
		t.Fatal(err)
	}
	prog.Path = link
	compute := prog.Start(t, nil).Process.Pid
	idle := start(t, "idle")
	sel := &Selector{Proc: proc.FS{}, Window: 500 * time.Millisecond}
	tests := []struct {
		name    string
		spec    Spec
		wantPID int
		wantErr error
	}{
		{"busiest process when nothing is named", Spec{}, compute, nil},
		{"by pid", Spec{PID: idle}, idle, nil},
		{"by name", Spec{Name: "^" + name + "$"}, compute, nil},
		{"kernel thread", Spec{PID: 2}, 0, ErrKernelThread},
		{"no match", Spec{Name: "^no-such-process-name$"}, 0, ErrNoProcess},
		{"no container", Spec{Container: "nope"}, 0, ErrNoContainer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := sel.Select(context.Background(), tt.spec)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Select(%+v) error = %v, want %v", tt.spec, err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error spans lines: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Select(%+v): %v", tt.spec, err)
			}
			if got.PID != tt.wantPID && !(tt.spec == Spec{} && scenario.Busier(t, got.PID, compute)) {
				t.Errorf("Select(%+v) = %d (%s), want %d", tt.spec, got.PID, got.Name, tt.wantPID)
			}
		})
	}
}

// With KernelThreads (the diagnosis), a kernel thread is a target, said
// to be one; without, it is refused.
func TestSelectKernelThread(t *testing.T) {
	sel := &Selector{Proc: proc.FS{}, KernelThreads: true}
	got, err := sel.Select(context.Background(), Spec{PID: 2})
	if err != nil || got.PID != 2 || !got.Kernel || got.Name != "kthreadd" {
		t.Errorf("Select(PID 2) = %+v, %v; want kthreadd, a kernel thread", got, err)
	}
	sel.KernelThreads = false
	if _, err := sel.Select(context.Background(), Spec{PID: 2}); !errors.Is(err, ErrKernelThread) {
		t.Errorf("without KernelThreads: %v", err)
	}
}

// The kernel's interrupts above the busiest process: the answer says the
// kernel is the busiest.
func TestIdleErrorInterrupts(t *testing.T) {
	e := &IdleError{PID: 812, Name: "sshd", CPU: 5, Window: 500 * time.Millisecond, MinCPU: 10, Interrupts: 62.5}
	want := "the kernel is the busiest: interrupts and softirqs took 62.5% of a core over 0.5 s, more than any process (the busiest, sshd (PID 812), used 5.0%)"
	if !strings.HasPrefix(e.Error(), want) {
		t.Errorf("%q, want it to start %q", e.Error(), want)
	}
	e.Interrupts = 4
	if !strings.HasPrefix(e.Error(), "nothing is busy") {
		t.Errorf("%q", e.Error())
	}
}

// waitState waits until the main thread of pid is in state.
func waitState(t *testing.T, pid int, state byte) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		p, err := proc.NewScanner(proc.FS{}).ReadProcess(pid, false)
		if err == nil && p.State == state {
			return
		}
	}
	t.Fatalf("PID %d never reached state %c", pid, state)
}

// TestSelectExited covers processes that no longer run as a whole: a
// zombie, and one whose main thread exited while a thread spins on. Both
// get one line saying so, not a report without names.
func TestSelectExited(t *testing.T) {
	zombie := exec.Command("true")
	if err := zombie.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { zombie.Wait() })
	waitState(t, zombie.Process.Pid, 'Z')
	leader := start(t, "leaderexit")
	waitState(t, leader, 'Z')

	sel := &Selector{Proc: proc.FS{}}
	for _, tt := range []struct {
		name string
		pid  int
		want error
		text string
	}{
		{"zombie", zombie.Process.Pid, ErrGone, "a zombie until its parent, PID " + strconv.Itoa(os.Getpid())},
		{"main thread exited", leader, ErrLeaderExited, "runs on in other threads after its main thread exited"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := sel.Select(context.Background(), Spec{PID: tt.pid})
			if !errors.Is(err, tt.want) || !strings.Contains(fmt.Sprint(err), tt.text) {
				t.Errorf("Select(%d) = %v; want %v saying %q", tt.pid, err, tt.want, tt.text)
			}
		})
	}
}

func TestSelectCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	sel := &Selector{Window: time.Hour}
	if _, err := sel.Select(ctx, Spec{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Select with a canceled context = %v, want context.Canceled", err)
	}
}

func TestCheckTraceSelf(t *testing.T) {
	// A process may trace its own children (same uid, and root besides).
	sel := &Selector{}
	if err := sel.CheckTrace(start(t, "idle")); err != nil {
		t.Errorf("CheckTrace of our own child: %v", err)
	}
	if err := sel.CheckTrace(1 << 30); !errors.Is(err, ErrGone) {
		t.Errorf("CheckTrace of a missing PID = %v, want ErrGone", err)
	}
}

func TestPrivilegeErrorText(t *testing.T) {
	e := &PrivilegeError{PID: 4677, Name: "vpnserver", Missing: []string{"CAP_SYS_PTRACE"}}
	msg := e.Error()
	for _, want := range []string{"PID 4677 (vpnserver)", "missing CAP_SYS_PTRACE", "still works"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q lacks %q", msg, want)
		}
	}
	if !errors.Is(e, ErrPrivilege) {
		t.Error("PrivilegeError is not ErrPrivilege")
	}
}

// idleHost writes a proc tree of two processes whose figures never move,
// as on a host where nothing runs: their CPU over any window is 0.
func idleHost(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for pid, comm := range map[int]string{1: "init", 40: "sshd"} {
		dir := filepath.Join(root, strconv.Itoa(pid))
		if err := os.MkdirAll(filepath.Join(dir, "task", strconv.Itoa(pid)), 0o755); err != nil {
			t.Fatal(err)
		}
		stat := fmt.Sprintf("%d (%s) S 0 %d %d 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 16979 3133440 412 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n", pid, comm, pid, pid)
		for _, f := range []string{filepath.Join(dir, "stat"), filepath.Join(dir, "task", strconv.Itoa(pid), "stat")} {
			if err := os.WriteFile(f, []byte(stat), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

func TestSelectNothingBusy(t *testing.T) {
	root := idleHost(t)
	tests := []struct {
		name   string
		minCPU float64
		idle   bool
	}{
		{"threshold above the busiest", 10, true},
		{"threshold at the busiest", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sel := &Selector{Proc: proc.FS{Root: root}, Window: 20 * time.Millisecond, Self: -1, MinCPU: tt.minCPU}
			got, err := sel.Select(context.Background(), Spec{})
			if !tt.idle {
				if err != nil {
					t.Fatalf("Select: %v", err)
				}
				// On a tie the older process: PID 1.
				if got.PID != 1 || got.Picked == nil || got.Picked.Among != "the host" {
					t.Errorf("Select = %+v (picked %+v), want PID 1 picked as the host's busiest", got, got.Picked)
				}
				return
			}
			var idle *IdleError
			if !errors.As(err, &idle) || !errors.Is(err, ErrNothingBusy) {
				t.Fatalf("Select = %+v, %v; want an IdleError", got, err)
			}
			want := "nothing is busy: the busiest process, init (PID 1), used 0.0% of a core over 0.02 s (below 10%)"
			if !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error %q, want it to start %q", err, want)
			}
		})
	}
}

func TestIdleThreshold(t *testing.T) {
	tests := []struct {
		cpu, min float64
		idle     bool
	}{
		{0, 10, true},
		{9.9, 10, true},
		{10, 10, false},
		{97, 10, false},
		{0, 0, false}, // --min-cpu 0: the busiest, whatever it uses
	}
	for _, tt := range tests {
		sel := &Selector{MinCPU: tt.min}
		got := sel.idle(proc.ProcessUsage{CPU: proc.CPU{Total: tt.cpu}})
		if (got != nil) != tt.idle {
			t.Errorf("busiest at %.1f%%, MinCPU %.1f: idle = %v, want %v", tt.cpu, tt.min, got, tt.idle)
		}
	}
}

// TestSelectThread names a thread's TID where a PID is expected: the
// selection is its process, and the note says so; a thread of a process
// that cannot be examined gets that process's refusal, naming both.
func TestSelectThread(t *testing.T) {
	compute := start(t, "compute")
	cruncher := scenario.OtherThread(t, compute)
	leader := start(t, "leaderexit")
	waitState(t, leader, 'Z')
	worker := scenario.OtherThread(t, leader)

	var notes []string
	sel := &Selector{Proc: proc.FS{}, Notify: func(n string) { notes = append(notes, n) }}
	got, err := sel.Select(context.Background(), Spec{PID: cruncher})
	if err != nil {
		t.Fatalf("Select(TID %d): %v", cruncher, err)
	}
	if got.PID != compute || got.Name != "compute" || got.Named == nil || got.Named.TID != cruncher || got.Named.Name != "cruncher" {
		t.Errorf("Select(TID %d) = %+v (named %+v), want process %d (compute) named by thread cruncher", cruncher, got, got.Named, compute)
	}
	want := fmt.Sprintf("TID %d (cruncher) is a thread of process %d (compute), not a process: examining process %d", cruncher, compute, compute)
	if len(notes) != 1 || !strings.Contains(notes[0], want) {
		t.Errorf("notes %q, want one saying %q", notes, want)
	}

	notes = nil
	if got, err := sel.Select(context.Background(), Spec{PID: compute}); err != nil || got.Named != nil || len(notes) > 0 {
		t.Errorf("Select(PID %d) = %+v, %v, notes %q: want the process, no thread, no note", compute, got, err, notes)
	}

	_, err = sel.Select(context.Background(), Spec{PID: worker})
	want = fmt.Sprintf("TID %d (worker) is a thread of process %d, not a process: PID %d (leaderexit) runs on in other threads", worker, leader, leader)
	if !errors.Is(err, ErrLeaderExited) || !strings.Contains(fmt.Sprint(err), want) {
		t.Errorf("Select(TID %d) = %v; want ErrLeaderExited saying %q", worker, err, want)
	}
}
