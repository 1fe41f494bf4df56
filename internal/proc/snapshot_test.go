package proc

import (
	"errors"
	"os"
	"runtime"
	"testing"
	"time"
)

func TestScanSeesSelfAndThreads(t *testing.T) {
	sc := NewScanner(FS{})
	snap, err := sc.Scan(ScanOptions{Threads: true})
	if err != nil {
		t.Fatal(err)
	}
	self := snap.Find(os.Getpid())
	if self == nil {
		t.Fatalf("own PID %d not in the scan", os.Getpid())
	}
	if len(self.Threads) != self.NumThreads {
		t.Errorf("%d threads read, stat says %d", len(self.Threads), self.NumThreads)
	}
	for _, p := range snap.Processes {
		if p.KernelThread() {
			t.Errorf("kernel thread %d (%s) in a scan that did not ask for them", p.PID, p.Comm)
		}
	}
	if snap.Find(2) != nil {
		t.Error("kthreadd (PID 2) in the scan")
	}
}

func TestReadProcessGone(t *testing.T) {
	_, err := NewScanner(FS{}).ReadProcess(1<<30, true)
	if !errors.Is(err, ErrGone) {
		t.Errorf("ReadProcess of a missing PID = %v, want ErrGone", err)
	}
}

func TestScanFixtureRoot(t *testing.T) {
	// A fixture /proc: the scanner reads only what is under its root.
	root := t.TempDir()
	write := func(path, data string) {
		t.Helper()
		if err := os.MkdirAll(root+"/"+path[:len(path)-len("/stat")], 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(root+"/"+path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("42/stat", "42 (vpnserver) S 1 42 42 0 -1 4194560 0 0 0 0 10 90 0 0 20 0 2 0 500 1000 300 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n")
	write("42/task/42/stat", "42 (vpnserver) S 1 42 42 0 -1 4194560 0 0 0 0 1 1 0 0 20 0 2 0 500 1000 300 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n")
	write("42/task/43/stat", "43 (NatThreadMain) R 1 42 42 0 -1 4194560 0 0 0 0 9 89 0 0 20 0 2 0 501 1000 300 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n")
	write("2/stat", "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 2 0 0 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n")
	if err := os.MkdirAll(root+"/self", 0o755); err != nil { // not a PID
		t.Fatal(err)
	}
	snap, err := NewScanner(FS{Root: root}).Scan(ScanOptions{Threads: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Processes) != 1 || snap.Processes[0].PID != 42 {
		t.Fatalf("scan = %+v, want only PID 42", snap.Processes)
	}
	th := snap.Processes[0].Threads
	if len(th) != 2 || th[1].Comm != "NatThreadMain" || th[1].State != 'R' {
		t.Errorf("threads = %+v", th)
	}
}

func TestIdleThreadsCarriedOver(t *testing.T) {
	// A process whose CPU time has not moved keeps its previous thread
	// slice; a busy one is read again.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sc := NewScanner(FS{})
	first, err := sc.Scan(ScanOptions{Threads: true, PIDs: []int{1, os.Getpid()}})
	if err != nil {
		t.Fatal(err)
	}
	// Burn more than a tick so our own times move.
	for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); {
	}
	second, err := sc.Scan(ScanOptions{Threads: true, PIDs: []int{1, os.Getpid()}})
	if err != nil {
		t.Fatal(err)
	}
	self1, self2 := first.Find(os.Getpid()), second.Find(os.Getpid())
	if &self1.Threads[0] == &self2.Threads[0] {
		t.Error("a busy process's threads were carried over instead of read")
	}
	init1, init2 := first.Find(1), second.Find(1)
	if init1 != nil && init2 != nil && init1.UTime == init2.UTime && init1.STime == init2.STime &&
		init1.NumThreads == init2.NumThreads && &init1.Threads[0] != &init2.Threads[0] {
		t.Error("an idle process's threads were read again instead of carried over")
	}
}

// TestScanTakesListed: a process Listed holds is taken as it is listed,
// not read again; every other process /proc lists is read from it; a
// listed one /proc does not list (it exited) is left out. The listing's
// order does not matter for PIDs given in any order.
func TestScanTakesListed(t *testing.T) {
	self := os.Getpid()
	gone := 1 << 30 // above the kernel's PID limit: never listed
	listed := []Process{
		{Stat: Stat{PID: self, Comm: "listed", StartTime: 1}, Threads: []Stat{{PID: self, Comm: "listed"}}},
		{Stat: Stat{PID: gone, Comm: "gone"}},
	}
	snap, err := NewScanner(FS{}).Scan(ScanOptions{Threads: true, Listed: listed})
	if err != nil {
		t.Fatal(err)
	}
	if p := snap.Find(self); p == nil || p.Comm != "listed" || len(p.Threads) != 1 {
		t.Errorf("this process: %+v, want the listed one", p)
	}
	if snap.Find(gone) != nil {
		t.Error("a listed process /proc does not list is in the scan")
	}
	read := 0
	for _, p := range snap.Processes {
		if p.PID != self && len(p.Threads) > 0 {
			read++
		}
	}
	if read == 0 {
		t.Error("no other process read from /proc")
	}
	snap, err = NewScanner(FS{}).Scan(ScanOptions{Threads: true, Listed: listed, PIDs: []int{self, os.Getppid()}})
	if err != nil {
		t.Fatal(err)
	}
	if p := snap.Find(self); p == nil || p.Comm != "listed" {
		t.Errorf("this process, of two PIDs asked for: %+v, want the listed one", p)
	}
	if p := snap.Find(os.Getppid()); p == nil || len(p.Threads) == 0 {
		t.Errorf("the parent, of two PIDs asked for: %+v, want it read with its threads", p)
	}
}
