package unwind

import (
	"debug/elf"
	"encoding/binary"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/cpuwhy/cpuwhy/test/scenario"
)

var update = flag.Bool("update", false, "rewrite testdata/*.frame from the built scenarios and the host's libc")

// Seed files in testdata hold one section each: its virtual address as 8
// little-endian bytes, then its bytes.
func readSeed(t testing.TB, name string) (addr uint64, data []byte) {
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 8 {
		t.Fatalf("%s: shorter than its address", name)
	}
	return binary.LittleEndian.Uint64(b), b[8:]
}

// maxSeedSize keeps the libc seed small: its first entries are as varied
// as the rest.
const maxSeedSize = 8 << 10

// TestUpdateSeeds writes the fuzz seeds with -update.
func TestUpdateSeeds(t *testing.T) {
	if !*update {
		t.Skip("run with -update to rewrite the seeds")
	}
	bp := scenario.Build(t, "busypoll")
	for name, path := range map[string]string{"vpnserver": bp.Path, "libnat.so": bp.Files["libnat.so"], "libc.so.6": libcPath(t)} {
		f, err := elf.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		s, err := ELFSections(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		eh, hdr := s.EHFrame, s.EHFrameHdr
		if len(eh) > maxSeedSize {
			// Cut at an entry boundary and drop the header, whose table
			// would point past the cut.
			eh, hdr = eh[:entriesWithin(t, eh, maxSeedSize)], nil
		}
		write := func(suffix string, addr uint64, data []byte) {
			b := binary.LittleEndian.AppendUint64(nil, addr)
			if err := os.WriteFile(filepath.Join("testdata", name+suffix), append(b, data...), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		write(".eh_frame", s.EHFrameAddr, eh)
		if hdr != nil {
			write(".eh_frame_hdr", s.EHFrameHdrAddr, hdr)
		}
	}
}

// entriesWithin returns the end of the last whole entry of eh that ends
// within max bytes.
func entriesWithin(t testing.TB, eh []byte, max int) int {
	end := 0
	for end+4 <= len(eh) {
		n := int(binary.LittleEndian.Uint32(eh[end:]))
		if n == 0 || n == 0xffffffff || end+4+n > max {
			break
		}
		end += 4 + n
	}
	if end == 0 {
		t.Fatal("no whole entry in the first bytes")
	}
	return end
}

// exercise looks up a few addresses of every indexed FDE, so fuzzing
// reaches CIE and FDE parsing and evaluation through the Table.
func exercise(tab *Table) {
	n := 0
	for _, refs := range [][]fdeRef{tab.ehIndex, tab.debugIndex} {
		for _, ref := range refs {
			if n++; n > 256 {
				return
			}
			tab.RowAt(ref.start)
			tab.RowAt(ref.start + 7)
		}
	}
}

func FuzzParseEHFrame(f *testing.F) {
	for _, name := range []string{"vpnserver", "libnat.so"} {
		addr, eh := readSeed(f, name+".eh_frame")
		hdrAddr, hdr := readSeed(f, name+".eh_frame_hdr")
		f.Add(eh, addr, hdr, hdrAddr)
	}
	addr, eh := readSeed(f, "libc.so.6.eh_frame")
	f.Add(eh, addr, []byte(nil), uint64(0))
	f.Fuzz(func(t *testing.T, eh []byte, addr uint64, hdr []byte, hdrAddr uint64) {
		tab, err := NewTable(Sections{EHFrame: eh, EHFrameAddr: addr, EHFrameHdr: hdr, EHFrameHdrAddr: hdrAddr})
		if err != nil {
			return
		}
		exercise(tab)
	})
}

func FuzzParseDebugFrame(f *testing.F) {
	dbg := &frameBuilder{}
	c4 := dbg.cie(4, "", nil, x86CIEInsns)
	dbg.fdeDebug(c4, 0x5000, 0x10, []byte{cfaAdvanceLoc4, 4, 0, 0, 0, cfaDefCFAOffsetSF, 0x7e})
	c1 := dbg.cie(1, "", nil, x86CIEInsns)
	dbg.fdeDebug(c1, 0x6000, 0x10, []byte{cfaSetLoc, 0x08, 0x60, 0, 0, 0, 0, 0, 0, cfaDefCFAOffset, 24, cfaRememberState, cfaRestoreState})
	f.Add(dbg.buf.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		tab, err := NewTable(Sections{DebugFrame: data})
		if err != nil {
			return
		}
		exercise(tab)
	})
}

func FuzzEvalCFI(f *testing.F) {
	f.Add(x86CIEInsns, []byte{cfaAdvanceLoc | 1, cfaDefCFAOffset, 16, cfaOffset | 6, 2, cfaAdvanceLoc | 3, cfaDefCFARegister, 6}, uint8(1), int8(-8), uint64(0x1000), uint64(0x1004))
	f.Add(x86CIEInsns, cat([]byte{cfaDefCFAExpression}, uleb(uint64(len(pltExpr))), pltExpr), uint8(1), int8(-8), uint64(0x1000), uint64(0x1010))
	f.Add(x86CIEInsns, []byte{cfaRememberState, cfaAdvanceLoc2, 0xff, 0xff, cfaRestoreState, cfaValOffsetSF, 6, 0x7f, cfaGNUArgsSize, 8}, uint8(4), int8(-4), uint64(0), uint64(0xffff))
	f.Fuzz(func(t *testing.T, cieInsns, fdeInsns []byte, codeAlign uint8, dataAlign int8, start, pc uint64) {
		row, err := EvalCFI(cieInsns, fdeInsns, uint64(codeAlign), int64(dataAlign), RegAMD64RA, start, pc)
		if err == nil && row.CFA.Kind == CFAPLT && row.CFA.Threshold > 15 {
			t.Errorf("PLT threshold %d", row.CFA.Threshold)
		}
	})
}

// TestSeedsParse keeps the seeds meaningful: each is valid CFI with FDEs.
func TestSeedsParse(t *testing.T) {
	for _, name := range []string{"vpnserver", "libnat.so", "libc.so.6"} {
		addr, eh := readSeed(t, name+".eh_frame")
		tab, err := NewTable(Sections{EHFrame: eh, EHFrameAddr: addr})
		if err != nil {
			t.Errorf("%s seed: %v", name, err)
		} else if tab.Len() == 0 {
			t.Errorf("%s seed has no FDEs", name)
		}
	}
}
