package unwind

import (
	"bufio"
	"debug/elf"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/cpuwhy/cpuwhy/internal/objfile"
	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/test/scenario"
)

// BenchmarkUnwindBusypoll is the cost of unwinding one sample of
// NatThreadMain (five frames, all by CFI, tables built beforehand), as a
// sampler pays it per sample.
func BenchmarkUnwindBusypoll(b *testing.B) {
	_, tid, space, _ := startScenario(b, "busypoll", "NatThreadMain")
	runtime.LockOSThread()
	regs, stack, err := snapshot(tid)
	runtime.UnlockOSThread()
	if err != nil {
		b.Fatal(err)
	}
	var u Unwinder
	tr := u.Trace(regs, stack, space.Lookup, 128)
	b.ReportMetric(float64(len(tr.Frames)), "frames")
	b.ReportAllocs()
	for b.Loop() {
		u.Unwind(regs, stack, space.Lookup, 128)
	}
}

// BenchmarkRowAt is one FDE lookup and evaluation in libc.
func BenchmarkRowAt(b *testing.B) {
	f, err := elf.Open(libcPath(b))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	tab, err := elfTable(f)
	if err != nil {
		b.Fatal(err)
	}
	refs := tab.ehIndex
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		tab.RowAt(refs[i%len(refs)].start + 4)
		i += 97
	}
}

// BenchmarkNewTableLibc is building libc's table from its sections.
func BenchmarkNewTableLibc(b *testing.B) {
	f, err := elf.Open(libcPath(b))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	s, err := ELFSections(f)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewTable(s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSpaceBusypoll is building the tables of the busypoll
// scenario's process (vpnserver, libnat.so, libc, ld.so, the vdso) as a
// resolver does at each diagnosis: every object opened through the
// process's root and read ("own"), or identified by a stat and taken
// from a Cache that already holds it ("cached", as in cpuwhy agent).
func BenchmarkSpaceBusypoll(b *testing.B) {
	pid, _, _, _ := startScenario(b, "busypoll", "NatThreadMain")
	benchSpace(b, pid)
}

// BenchmarkSpaceNode is BenchmarkSpaceBusypoll of node running the
// nodehot scenario: node's binary holds 3.9 MiB of tables (76,000
// functions).
func BenchmarkSpaceNode(b *testing.B) {
	p := scenario.Build(b, "nodehot")
	// node itself, not its launcher's sh.
	cmd := exec.Command("node", filepath.Join(filepath.Dir(p.Path), "ledger.js"), "compute")
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || !strings.HasPrefix(line, "ready") {
		b.Fatalf("nodehot: %q %v", line, err)
	}
	requirePtrace(b, cmd.Process.Pid)
	benchSpace(b, cmd.Process.Pid)
}

func benchSpace(b *testing.B, pid int) {
	maps, err := proc.FS{}.Maps(pid)
	if err != nil {
		b.Fatal(err)
	}
	objects := objfile.NewOpener(proc.FS{}, pid)
	mem := ProcessMemory{Pid: pid}
	b.Run("own", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			NewSpace(maps, objects.OpenELF, mem)
			objects.Close()
		}
	})
	b.Run("cached", func(b *testing.B) {
		c := NewCache(64 << 20)
		c.NewSpace(maps, objects.Identify, objects.OpenELF, mem)
		objects.Close()
		b.ReportAllocs()
		for b.Loop() {
			c.NewSpace(maps, objects.Identify, objects.OpenELF, mem)
			objects.Close()
		}
	})
}
