package unwind

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/symbol"
	"github.com/cpuwhy/cpuwhy/internal/sys"
	"github.com/cpuwhy/cpuwhy/test/privtest"
	"github.com/cpuwhy/cpuwhy/test/scenario"
)

// stackCopySize is how much of a stopped thread's stack the tests copy,
// as a perf sampler would (PERF_SAMPLE_STACK_USER of 64 KiB).
const stackCopySize = 64 << 10

// snapshot stops thread tid, reads its registers and a copy of its stack
// from SP, and lets it go. The calling goroutine must be locked to its
// thread. The thread is detached whatever happens.
func snapshot(tid int) (Regs, StackCopy, error) {
	if err := sys.PtraceSeize(tid, 0); err != nil {
		return Regs{}, StackCopy{}, err
	}
	stopped := false
	defer func() {
		if !stopped {
			// PTRACE_DETACH needs a stopped tracee: stop it first.
			sys.PtraceInterrupt(tid)
			waitStop(tid)
		}
		sys.PtraceDetach(tid, 0)
	}()
	if err := sys.PtraceInterrupt(tid); err != nil {
		return Regs{}, StackCopy{}, err
	}
	if err := waitStop(tid); err != nil {
		return Regs{}, StackCopy{}, err
	}
	stopped = true
	r, err := sys.PtraceGetUserRegs(tid)
	if err != nil {
		return Regs{}, StackCopy{}, err
	}
	// The thread's TGID is not needed: process_vm_readv takes any TID of
	// the process.
	stack := make([]byte, stackCopySize)
	n, err := sys.ReadProcessMemory(tid, stack, r.SP)
	if err != nil {
		return Regs{}, StackCopy{}, err
	}
	return Regs{PC: r.PC, SP: r.SP, FP: r.FP, LR: r.LR}, StackCopy{Base: r.SP, Data: stack[:n]}, nil
}

// waitStop waits until tid reports a stop.
func waitStop(tid int) error {
	for {
		var st sys.WaitStatus
		got, err := sys.WaitTracee(&st, false)
		if err != nil {
			return fmt.Errorf("waiting for %d to stop: %w", tid, err)
		}
		if got != tid {
			continue
		}
		if st.Exited() || st.Signaled() {
			return fmt.Errorf("thread %d ended: %v", tid, st)
		}
		if st.Stopped() {
			return nil
		}
	}
}

// findThread returns the TID of the thread of pid named comm.
func findThread(t testing.TB, pid int, comm string) int {
	t.Helper()
	fs := proc.FS{}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		ents, err := os.ReadDir(fs.PIDPath(pid, "task"))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			tid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			b, err := os.ReadFile(fs.TaskPath(pid, tid, "comm"))
			if err == nil && strings.TrimSpace(string(b)) == comm {
				return tid
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no thread %q in %d", comm, pid)
	return 0
}

// requirePtrace skips (or fails, when privileges are required) unless the
// test may trace pid.
func requirePtrace(t testing.TB, pid int) {
	t.Helper()
	if err := sys.CheckPtraceAccess(pid); err != nil {
		if errors.Is(err, syscall.EPERM) {
			privtest.Require(t, fmt.Sprintf("cannot trace the scenario: %v", err))
		}
		t.Fatal(err)
	}
}

// namer names addresses with ELF symbols (.symtab and .dynsym, plus
// libc's detached debug symbols when installed): a stand-in for the symbol
// package in tests, so they can say which function a frame is in.
type namer struct {
	mods *symbol.Modules
	maps []proc.Mapping
	syms map[string][]elf.Symbol // by path, sorted by value
	bias map[uint64]uint64       // by mapping start
}

func newNamer(t testing.TB, maps []proc.Mapping) *namer {
	n := &namer{mods: symbol.NewModules(maps), syms: map[string][]elf.Symbol{}, bias: map[uint64]uint64{}}
	for _, m := range maps {
		if !m.Exec() || !strings.HasPrefix(m.Path, "/") {
			continue
		}
		n.maps = append(n.maps, m)
		f, err := elf.Open(m.Path)
		if err != nil {
			t.Fatal(err)
		}
		if b, err := LoadBias(f, m.Start, m.Offset); err == nil {
			n.bias[m.Start] = b
		}
		if _, ok := n.syms[m.Path]; !ok {
			syms := functionSymbols(f)
			if dbg := debugFile(f); dbg != nil {
				syms = append(syms, functionSymbols(dbg)...)
				dbg.Close()
			}
			sort.Slice(syms, func(i, j int) bool { return syms[i].Value < syms[j].Value })
			n.syms[m.Path] = syms
		}
		f.Close()
	}
	return n
}

func functionSymbols(f *elf.File) []elf.Symbol {
	var out []elf.Symbol
	for _, get := range []func() ([]elf.Symbol, error){f.Symbols, f.DynamicSymbols} {
		syms, _ := get()
		for _, s := range syms {
			if elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Value != 0 {
				out = append(out, s)
			}
		}
	}
	return out
}

// debugFile opens f's detached debug symbols by build ID, if installed.
func debugFile(f *elf.File) *elf.File {
	sec := f.Section(".note.gnu.build-id")
	if sec == nil {
		return nil
	}
	data, err := sec.Data()
	if err != nil || len(data) < 16+2 {
		return nil
	}
	id := fmt.Sprintf("%x", data[16:])
	dbg, err := elf.Open(filepath.Join("/usr/lib/debug/.build-id", id[:2], id[2:]+".debug"))
	if err != nil {
		return nil
	}
	return dbg
}

// frame names one address: the module's base name, and the function when
// a symbol covers it (callers' return addresses are looked up at pc-1).
func (n *namer) frame(pc uint64, caller bool) (module, fn string) {
	if caller {
		pc--
	}
	for _, m := range n.maps {
		if pc < m.Start || pc >= m.End {
			continue
		}
		module = filepath.Base(m.Path)
		addr := pc - n.bias[m.Start]
		syms := n.syms[m.Path]
		i := sort.Search(len(syms), func(i int) bool { return syms[i].Value > addr }) - 1
		if i >= 0 && addr < syms[i].Value+syms[i].Size {
			return module, syms[i].Name
		}
		return module, ""
	}
	return n.mods.Frame(pc), ""
}

func (n *namer) describe(tr Trace) string {
	var b strings.Builder
	for i, f := range tr.Frames {
		mod, fn := n.frame(f.PC, i > 0)
		fmt.Fprintf(&b, "  #%d %#x %s %s (%v)\n", i, f.PC, mod, fn, f.Method)
	}
	fmt.Fprintf(&b, "  stop: %v %v", tr.Stop, tr.Err)
	return b.String()
}

// startedThread reports whether tr ends at the start of a thread that
// pthread_create started in binary mainModule: ... <- mainModule <-
// start_thread <- clone3, with CFI saying clone3 has no caller. Without
// libc's debug symbols start_thread and clone3 have no names, and only
// their module is checked.
func (n *namer) startedThread(tr Trace, mainModule string) bool {
	k := len(tr.Frames)
	if tr.Stop != StopOutermost || k < 3 {
		return false
	}
	mainMod, _ := n.frame(tr.Frames[k-3].PC, k-3 > 0)
	startMod, start := n.frame(tr.Frames[k-2].PC, true)
	cloneMod, clone := n.frame(tr.Frames[k-1].PC, true)
	return mainMod == mainModule &&
		strings.HasPrefix(startMod, "libc.so") && (start == "" || start == "start_thread") &&
		strings.HasPrefix(cloneMod, "libc.so") && (clone == "" || strings.Contains(clone, "clone"))
}

func (m Method) String() string {
	return [...]string{"none", "cfi", "fp"}[m]
}

// sampleThread snapshots thread tid of pid attempts times at random
// moments and unwinds each snapshot with u, calling check on each trace.
func sampleThread(t *testing.T, pid, tid, attempts int, u *Unwinder, space *Space, check func(i int, tr Trace)) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for i := 0; i < attempts; i++ {
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		regs, stack, err := snapshot(tid)
		if err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
		check(i, u.Trace(regs, stack, space.Lookup, 128))
	}
}

func startScenario(t testing.TB, name, thread string) (pid, tid int, space *Space, n *namer) {
	p := scenario.Build(t, name)
	cmd := p.Start(t, nil)
	pid = cmd.Process.Pid
	requirePtrace(t, pid)
	tid = findThread(t, pid, thread)
	maps, err := proc.FS{}.Maps(pid)
	if err != nil {
		t.Fatal(err)
	}
	space, errs := NewSpace(maps, func(m proc.Mapping) (*elf.File, error) { return elf.Open(m.Path) }, ProcessMemory{Pid: pid})
	for _, err := range errs {
		t.Errorf("NewSpace: %v", err)
	}
	return pid, tid, space, newNamer(t, maps)
}

// TestUnwindBusypoll unwinds NatThreadMain of the busypoll scenario, a
// stripped -O2 -fomit-frame-pointer binary, from 50 random stops, in the
// kernel in recvfrom or in user code, and wants at least 90% of them to
// reach the thread's start: recvfrom (libc) <- RecvFrom (libnat.so) <-
// vpnserver <- start_thread <- clone3.
func TestUnwindBusypoll(t *testing.T) {
	const attempts, wantRate = 50, 0.9
	pid, tid, space, n := startScenario(t, "busypoll", "NatThreadMain")
	var u Unwinder
	ok, inRecvfrom, inRecvfromOK := 0, 0, 0
	sampleThread(t, pid, tid, attempts, &u, space, func(i int, tr Trace) {
		good := n.startedThread(tr, "vpnserver")
		if _, fn := n.frame(tr.Frames[0].PC, false); fn == "recvfrom" || fn == "__libc_recvfrom" {
			inRecvfrom++
			// The chain the field report is about.
			if good && len(tr.Frames) == 5 {
				mod1, fn1 := n.frame(tr.Frames[1].PC, true)
				mod2, _ := n.frame(tr.Frames[2].PC, true)
				if mod1 == "libnat.so" && fn1 == "RecvFrom" && mod2 == "vpnserver" {
					inRecvfromOK++
				} else {
					good = false
				}
			} else {
				good = false
			}
		}
		if good {
			ok++
		} else {
			t.Logf("attempt %d did not reach start_thread:\n%s", i, n.describe(tr))
		}
		if i == 0 {
			t.Logf("attempt 0:\n%s", n.describe(tr))
		}
	})
	rate := float64(ok) / attempts
	t.Logf("%d/%d unwound to start_thread (%.0f%%); %d stopped in recvfrom, %d of them recvfrom <- RecvFrom <- vpnserver <- start_thread",
		ok, attempts, 100*rate, inRecvfrom, inRecvfromOK)
	if rate < wantRate {
		t.Errorf("success rate %.2f < %.2f", rate, wantRate)
	}
	if inRecvfromOK == 0 {
		t.Errorf("no attempt unwound recvfrom <- RecvFrom <- vpnserver <- start_thread")
	}
}

// TestFramePointersFailBusypoll shows why CFI matters: with frame pointers
// omitted, a frame-pointer walk of the same thread does not reach
// start_thread.
func TestFramePointersFailBusypoll(t *testing.T) {
	const attempts = 20
	pid, tid, space, n := startScenario(t, "busypoll", "NatThreadMain")
	u := Unwinder{FramePointersOnly: true}
	ok := 0
	sampleThread(t, pid, tid, attempts, &u, space, func(i int, tr Trace) {
		if n.startedThread(tr, "vpnserver") || len(tr.Frames) >= 4 && containsModule(n, tr, "vpnserver") && tr.Stop == StopZeroRA {
			ok++
			t.Logf("frame pointers reached the start:\n%s", n.describe(tr))
		}
		if i == 0 {
			t.Logf("attempt 0, frame pointers only:\n%s", n.describe(tr))
		}
	})
	t.Logf("frame pointers alone: %d/%d reached the thread's start", ok, attempts)
	if ok > attempts/10 {
		t.Errorf("frame pointers alone unwound %d/%d: the scenario no longer shows why CFI is needed", ok, attempts)
	}
}

func containsModule(n *namer, tr Trace, module string) bool {
	for i, f := range tr.Frames {
		if mod, _ := n.frame(f.PC, i > 0); mod == module {
			return true
		}
	}
	return false
}

// TestUnwindCompute unwinds the cruncher thread of compute (-O2 -g, no
// system calls, all user time in crunch_numbers) to start_thread.
func TestUnwindCompute(t *testing.T) {
	const attempts, wantRate = 20, 0.9
	pid, tid, space, n := startScenario(t, "compute", "cruncher")
	var u Unwinder
	ok := 0
	sampleThread(t, pid, tid, attempts, &u, space, func(i int, tr Trace) {
		_, fn := n.frame(tr.Frames[0].PC, false)
		if fn == "crunch_numbers" && n.startedThread(tr, "compute") {
			ok++
		} else {
			t.Logf("attempt %d:\n%s", i, n.describe(tr))
		}
	})
	t.Logf("%d/%d unwound crunch_numbers to start_thread", ok, attempts)
	if float64(ok)/attempts < wantRate {
		t.Errorf("success rate %d/%d < %.2f", ok, attempts, wantRate)
	}
}

// TestUnwindThroughVDSO reads the vdso's CFI from the target's memory and
// unwinds from its clock_gettime entry: a stopped NatThreadMain stack with
// a call into the vdso pushed on top of it (the PC where it stopped as the
// return address), which must unwind through the vdso to start_thread.
func TestUnwindThroughVDSO(t *testing.T) {
	pid, tid, space, n := startScenario(t, "busypoll", "NatThreadMain")
	maps, err := proc.FS{}.Maps(pid)
	if err != nil {
		t.Fatal(err)
	}
	var vdso proc.Mapping
	for _, m := range maps {
		if m.Path == "[vdso]" {
			vdso = m
		}
	}
	if vdso.Start == 0 {
		t.Skip("no [vdso] mapping")
	}
	img := make([]byte, vdso.End-vdso.Start)
	if _, err := (ProcessMemory{Pid: pid}).ReadAt(img, vdso.Start); err != nil {
		t.Fatal(err)
	}
	f, err := elf.NewFile(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	syms, err := f.DynamicSymbols()
	if err != nil {
		t.Fatal(err)
	}
	var entry uint64
	for _, s := range syms {
		if s.Name == "__vdso_clock_gettime" {
			entry = s.Value
		}
	}
	if entry == 0 {
		t.Fatal("the vdso has no __vdso_clock_gettime")
	}
	bias, err := LoadBias(f, vdso.Start, 0)
	if err != nil {
		t.Fatal(err)
	}
	table, tbias, mapped := space.Lookup(entry + bias)
	if table == nil || !mapped || tbias != bias {
		t.Fatalf("Space.Lookup(vdso clock_gettime) = %v, %#x, %v", table, tbias, mapped)
	}
	if _, err := table.RowAt(entry); err != nil {
		t.Fatalf("vdso CFI at clock_gettime: %v", err)
	}

	// The stopped PC becomes a return address, looked up at PC-1, which
	// is only right past a function's first byte: take a stop inside
	// recvfrom (most are), past its entry.
	var regs Regs
	var stack StackCopy
	runtime.LockOSThread()
	for i := 0; i < 50; i++ {
		if regs, stack, err = snapshot(tid); err != nil {
			break
		}
		if _, fn := n.frame(regs.PC, false); fn == "recvfrom" || fn == "__libc_recvfrom" {
			if _, fn1 := n.frame(regs.PC-1, false); fn1 == fn {
				break
			}
		}
	}
	runtime.UnlockOSThread()
	if err != nil {
		t.Fatal(err)
	}
	var ret [8]byte
	binary.LittleEndian.PutUint64(ret[:], regs.PC)
	pushed := StackCopy{Base: stack.Base - 8, Data: append(ret[:], stack.Data...)}
	var u Unwinder
	tr := u.Trace(Regs{PC: entry + bias, SP: pushed.Base, FP: regs.FP}, pushed, space.Lookup, 128)
	if tr.Frames[0].Method != MethodCFI || len(tr.Frames) < 2 || tr.Frames[1].PC != regs.PC || !n.startedThread(tr, "vpnserver") {
		t.Errorf("unwinding from the vdso:\n%s", n.describe(tr))
	}
}
