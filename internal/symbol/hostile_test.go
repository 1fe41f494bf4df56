package symbol_test

import (
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/objfile"
	"github.com/cpuwhy/cpuwhy/internal/symbol"
	"github.com/cpuwhy/cpuwhy/test/containertest"
	"github.com/cpuwhy/cpuwhy/test/scenario"
)

// bait makes a host file that would name the main binary's entry point
// HOST_SECRET_FUNCTION if it were taken for vpnserver's debug file: it
// carries vpnserver's build-id and a function symbol at that address.
func bait(t *testing.T, dir, vpnserver, libnat string) string {
	t.Helper()
	id, err := hex.DecodeString(buildID(t, vpnserver))
	if err != nil || len(id) == 0 {
		t.Fatalf("build-id of vpnserver: %v", err)
	}
	note := make([]byte, 16, 16+len(id))
	binary.LittleEndian.PutUint32(note[0:], 4)
	binary.LittleEndian.PutUint32(note[4:], uint32(len(id)))
	binary.LittleEndian.PutUint32(note[8:], 3)
	copy(note[12:], "GNU\x00")
	note = append(note, id...)
	if err := os.WriteFile(filepath.Join(dir, "note"), note, 0o644); err != nil {
		t.Fatal(err)
	}
	copyFile(t, libnat, filepath.Join(dir, "base.so"))
	run(t, dir, "objcopy", "--strip-all", "--remove-section", ".note.gnu.build-id", "base.so", "stripped.so")
	run(t, dir, "objcopy", "--add-section", ".note.gnu.build-id=note",
		"--add-symbol", fmt.Sprintf("HOST_SECRET_FUNCTION=%#x,function,global", mainEntry(t, vpnserver)),
		"stripped.so", "bait.debug")
	return filepath.Join(dir, "bait.debug")
}

// hugeELF writes a sparse 4 GiB copy of the object at src whose .dynsym
// claims a terabyte.
func hugeELF(t *testing.T, src, dst string) {
	t.Helper()
	copyFile(t, src, dst)
	f, err := elf.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	idx := -1
	for i, s := range f.Sections {
		if s.Name == ".dynsym" {
			idx = i
		}
	}
	f.Close()
	raw, err := os.ReadFile(src)
	if err != nil || idx < 0 {
		t.Fatalf("no .dynsym in %s: %v", src, err)
	}
	shoff := binary.LittleEndian.Uint64(raw[0x28:])
	shentsize := uint64(binary.LittleEndian.Uint16(raw[0x3a:]))
	out, err := os.OpenFile(dst, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	var size [8]byte
	binary.LittleEndian.PutUint64(size[:], 1<<40)
	if _, err := out.WriteAt(size[:], int64(shoff+uint64(idx)*shentsize+32)); err != nil {
		t.Fatal(err)
	}
	if err := out.Truncate(4 << 30); err != nil {
		t.Fatal(err)
	}
}

// TestHostileContainer gives the container a root whose links lead to a
// host file that would name the main binary, plus truncated and huge
// objects where debug files are looked for. Nothing outside the root may
// be read, and nothing may panic or take unbounded memory.
func TestHostileContainer(t *testing.T) {
	p := scenario.Build(t, "busypoll")
	host := t.TempDir()
	baitPath := bait(t, host, p.Path, p.Files["libnat.so"])

	// The bait works: given as a debug dir, it names the entry point.
	entry := mainEntry(t, p.Path)
	id := buildID(t, p.Path)
	libnatID := buildID(t, p.Files["libnat.so"])
	debugDir := filepath.Join(host, "debug")
	os.MkdirAll(filepath.Join(debugDir, ".build-id", id[:2]), 0o755)
	copyFile(t, baitPath, filepath.Join(debugDir, ".build-id", id[:2], id[2:]+".debug"))
	hostRun := p.Start(t, nil).Process.Pid
	pc, _ := pcOf(t, hostRun, "/vpnserver", p.Path, entry)
	if f := symbolize(t, symbol.NewSymbolizer(symbol.Options{DebugDirs: []string{debugDir}}), hostRun, pc); f.Function != "HOST_SECRET_FUNCTION" {
		t.Fatalf("the bait does not work: frame = %+v", f)
	}

	c := containertest.Start(t, containertest.Config{Program: p.Path, Files: p.Files})
	c.WaitReady(t, 10*time.Second)
	root := c.RootDir
	mkdir := func(dir string) {
		if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, name string) {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	mkdir("usr/lib/debug/.build-id/" + id[:2])
	mkdir("usr/lib/debug/.build-id/" + libnatID[:2])
	mkdir("usr/lib/debug/opt/vpnserver")
	mkdir("opt/vpnserver/.debug")
	// Absolute and relative links to the bait, where vpnserver's debug
	// file would be.
	link(baitPath, "usr/lib/debug/.build-id/"+id[:2]+"/"+id[2:]+".debug")
	link(strings.Repeat("../", 20)+strings.TrimPrefix(baitPath, "/"), "usr/lib/debug/opt/vpnserver/vpnserver.debug")
	// The mapped library itself replaced by a link to the bait.
	if err := os.Remove(filepath.Join(root, "opt/vpnserver/libnat.so")); err != nil {
		t.Fatal(err)
	}
	link(baitPath, "opt/vpnserver/libnat.so")
	// Damaged objects where libnat.so's debug file would be.
	raw, err := os.ReadFile(p.Files["libnat.so"])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "usr/lib/debug/opt/vpnserver/libnat.so.debug"), raw[:len(raw)/3], 0o644); err != nil {
		t.Fatal(err)
	}
	hugeELF(t, p.Files["libnat.so"], filepath.Join(root, "usr/lib/debug/.build-id", libnatID[:2], libnatID[2:]+".debug"))

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s := symbol.NewSymbolizer(symbol.Options{})
	pc, m := pcOf(t, c.HostPID, "/opt/vpnserver/vpnserver", p.Path, entry)
	f := symbolize(t, s, c.HostPID, pc)
	if want := fmt.Sprintf("vpnserver+%#x", pc-m.Start+m.Offset); f.String() != want {
		t.Errorf("main binary entry: frame = %+v (%s), want %s", f, f, want)
	}
	libPC, _ := pcOf(t, c.HostPID, "/opt/vpnserver/libnat.so", p.Files["libnat.so"], symbolValue(t, p.Files["libnat.so"], "RecvFrom"))
	if f := symbolize(t, s, c.HostPID, libPC); f.Function != "RecvFrom" {
		t.Errorf("libnat.so: frame = %+v, want RecvFrom", f)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
		t.Errorf("symbolizing allocated %d MiB", grew>>20)
	}
	everything := fmt.Sprintf("%+v %+v", s.MissingSymbols(), s.Errors())
	if strings.Contains(everything, "HOST_SECRET") {
		t.Errorf("the host file was read: %s", everything)
	}
	miss := s.MissingSymbols()
	if len(miss) != 1 || miss[0].Module != "/opt/vpnserver/vpnserver" || miss[0].BuildID != id {
		t.Errorf("MissingSymbols() = %+v, want vpnserver", miss)
	}
	if err := s.Errors()["/opt/vpnserver/libnat.so"]; err == nil || !errors.Is(err, objfile.ErrTooLarge) {
		t.Errorf("error for libnat.so's huge debug file = %v, want ErrTooLarge", err)
	} else {
		t.Logf("libnat.so: %v", err)
	}
	t.Logf("missing: %+v", miss)
}
