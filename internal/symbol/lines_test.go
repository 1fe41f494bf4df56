package symbol

import (
	"bytes"
	"compress/zlib"
	"debug/dwarf"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cpuwhy/cpuwhy/internal/objfile"
	"github.com/cpuwhy/cpuwhy/test/privtest"
	"github.com/cpuwhy/cpuwhy/test/scenario"
)

// lineSources is a small C program with code from a header (inlined)
// and two units, compiled by the tests with relative paths so that DWARF
// 2-4 name its files relative to the compilation directory.
var lineSources = map[string]string{
	"h.h": "static inline int sq(int x)\n{\n\treturn x * x;\n}\n",
	"a.c": "#include \"h.h\"\nint f(int x);\nint main(int c, char **v)\n{\n\t(void)v;\n\treturn f(c) + sq(c);\n}\n",
	"b.c": "#include \"h.h\"\nint f(int x)\n{\n\tint s = 0;\n\tfor (int i = 0; i < x; i++)\n\t\ts += sq(i) ^ i;\n\treturn s;\n}\nint g(int x)\n{\n\treturn f(x) * 3;\n}\n",
}

// compileLines builds lineSources with the given compiler command and
// returns the executable's path.
func compileLines(t *testing.T, dir string, cmd ...string) string {
	t.Helper()
	for name, src := range lineSources {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c := exec.Command(cmd[0], append(cmd[1:], "-o", "prog", "a.c", "b.c")...)
	c.Dir = dir
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd, " "), err, out)
	}
	return filepath.Join(dir, "prog")
}

// wantRow is what debug/dwarf's rows say of an address.
type wantRow struct {
	file string
	line int
}

// dwarfRows reads every row of every unit's line program with
// debug/dwarf and returns, for each address a row starts at (and for
// the last address before the next row), the position the last row at
// or below it gives, skipping sequences at address 0 (code the linker
// discarded). versions are the line table versions seen.
func dwarfRows(t *testing.T, path string) (want map[uint64]wantRow, versions map[int]bool) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := f.DWARF()
	if err != nil {
		t.Fatalf("debug/dwarf on %s: %v", path, err)
	}
	want, versions = map[uint64]wantRow{}, map[int]bool{}
	line, _ := debugSectionBytes(t, f, "line")
	r := d.Reader()
	for {
		cu, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if cu == nil {
			break
		}
		r.SkipChildren()
		lr, err := d.LineReader(cu)
		if err != nil {
			t.Fatalf("unit at %#x: %v", cu.Offset, err)
		}
		if lr == nil {
			continue
		}
		if off, ok := cu.Val(dwarf.AttrStmtList).(int64); ok && off+6 <= int64(len(line)) {
			versions[int(f.ByteOrder.Uint16(line[off+4:]))] = true
		}
		var seq []dwarf.LineEntry
		for {
			var e dwarf.LineEntry
			if err := lr.Next(&e); err != nil {
				break
			}
			seq = append(seq, e)
			if !e.EndSequence {
				continue
			}
			if seq[0].Address != 0 {
				// Rows at the end's address cover nothing (SeekPC finds
				// the end row there).
				for i := 0; i < len(seq)-1 && seq[i].Address < e.Address; i++ {
					j := i
					for j+1 < len(seq)-1 && seq[j+1].Address == seq[i].Address {
						j++
					}
					w := wantRow{}
					if seq[j].File != nil {
						w = wantRow{seq[j].File.Name, seq[j].Line}
					}
					want[seq[i].Address] = w
					if next := seq[j+1].Address; next > seq[i].Address+1 {
						want[next-1] = w
					}
					i = j
				}
			}
			seq = seq[:0]
		}
	}
	return want, versions
}

func debugSectionBytes(t *testing.T, f *elf.File, name string) ([]byte, bool) {
	t.Helper()
	for _, n := range []string{".debug_" + name, ".zdebug_" + name} {
		if s := f.Section(n); s != nil {
			data, err := s.Data()
			if err != nil {
				t.Fatal(err)
			}
			return data, true
		}
	}
	return nil, false
}

// TestLinesMatchDebugDWARF checks the line index against debug/dwarf's
// own reading of every row, on objects made by the compilers and flags
// found in the wild: DWARF 4 and 5, gcc and clang, compressed sections
// (SHF_COMPRESSED and .zdebug), per-function sequences, C++, Go, and
// the distribution's libc debug file when installed.
func TestLinesMatchDebugDWARF(t *testing.T) {
	type object struct {
		name string
		path func(t *testing.T) string
		// relative: the program names files relative to its
		// compilation directory, which must then appear in the names.
		relative bool
	}
	compiled := func(cmd ...string) func(t *testing.T) string {
		return func(t *testing.T) string {
			if _, err := exec.LookPath(cmd[0]); err != nil {
				privtest.Require(t, fmt.Sprintf("%s is not installed", cmd[0]))
			}
			return compileLines(t, t.TempDir(), cmd...)
		}
	}
	objects := []object{
		{"gcc dwarf5", compiled("gcc", "-g", "-O2"), false},
		{"gcc dwarf4", compiled("gcc", "-g", "-gdwarf-4", "-O2"), true},
		{"gcc dwarf3 -O0", compiled("gcc", "-g", "-gdwarf-3", "-O0"), true},
		{"gcc -gz", compiled("gcc", "-g", "-O2", "-gz"), false},
		{"gcc -gz=zlib-gnu dwarf4", compiled("gcc", "-g", "-gdwarf-4", "-O2", "-gz=zlib-gnu"), true},
		{"gcc -ffunction-sections --gc-sections", compiled("gcc", "-g", "-O2", "-ffunction-sections", "-Wl,--gc-sections"), false},
		{"clang-14", compiled("clang-14", "-g", "-O2"), false},
		{"clang-14 dwarf4", compiled("clang-14", "-g", "-gdwarf-4", "-O2"), true},
		{"g++ cxxhot", func(t *testing.T) string { return scenario.Build(t, "cxxhot").Path }, false},
		{"go", func(t *testing.T) string {
			// Test binaries have no DWARF: build a program.
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module m\n"), 0o644)
			os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hi\") }\n"), 0o644)
			cmd := exec.Command("go", "build", "-o", "prog", ".")
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=", "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("go build: %v\n%s", err, out)
			}
			return filepath.Join(dir, "prog")
		}, false},
		{"libc debug file", func(t *testing.T) string {
			p := libcDebugFile(t)
			if p == "" {
				// .ci/run installs libc6-dbg.
				privtest.Require(t, "no debug file for libc.so.6 under /usr/lib/debug (Debian: apt-get install libc6-dbg)")
			}
			return p
		}, false},
	}
	for _, o := range objects {
		t.Run(o.name, func(t *testing.T) {
			path := o.path(t)
			want, versions := dwarfRows(t, path)
			if len(want) == 0 {
				t.Fatalf("debug/dwarf finds no rows in %s", path)
			}
			obj, err := objfile.OpenInRoot("/", path)
			if err != nil {
				t.Fatal(err)
			}
			tab := loadTable(obj, nil)
			defer tab.close()
			bad, joined := 0, 0
			for a, w := range want {
				file, line := tab.lineOf(a)
				if file != w.file || line != w.line {
					if bad++; bad <= 5 {
						t.Errorf("%#x: %s:%d, debug/dwarf says %s:%d", a, file, line, w.file, w.line)
					}
				}
				if filepath.IsAbs(file) && strings.HasPrefix(file, filepath.Dir(path)) {
					joined++
				}
			}
			if bad > 0 {
				t.Errorf("%d of %d addresses differ", bad, len(want))
			}
			if o.relative && joined == 0 {
				t.Errorf("no file name was joined with the compilation directory %s", filepath.Dir(path))
			}
			if len(tab.errs) > 0 {
				t.Errorf("errors: %v", tab.errs)
			}
			t.Logf("%d addresses agree; line table versions %v; %d sequences, %d checkpoints", len(want), versions, len(tab.lines.seqs), len(tab.lines.marks))
		})
	}
}

// libcDebugFile returns the host's debug file for its libc, "" when
// there is none.
func libcDebugFile(t *testing.T) string {
	t.Helper()
	for _, lib := range []string{"/lib/x86_64-linux-gnu/libc.so.6", "/lib/aarch64-linux-gnu/libc.so.6", "/lib64/libc.so.6"} {
		f, err := os.Open(lib)
		if err != nil {
			continue
		}
		o, err := objfile.Parse(f, -1)
		if err != nil || len(o.BuildID) < 3 {
			f.Close()
			continue
		}
		f.Close()
		p := "/usr/lib/debug/.build-id/" + o.BuildID[:2] + "/" + o.BuildID[2:] + ".debug"
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// lineProgram assembles a DWARF line program of the given version from
// the header tables and opcodes, for hand-made cases.
func lineProgram(version uint16, tables, ops []byte) []byte {
	var h bytes.Buffer
	if version >= 5 {
		h.Write([]byte{8, 0}) // address size, segment selector size
	}
	var rest bytes.Buffer
	rest.WriteByte(1) // minimum instruction length
	if version >= 4 {
		rest.WriteByte(1) // maximum operations per instruction
	}
	rest.Write([]byte{1, 0xfb, 14, 13})                    // default_is_stmt, line_base -5, line_range 14, opcode_base 13
	rest.Write([]byte{0, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 1}) // standard opcode lengths
	rest.Write(tables)
	var hl [4]byte
	binary.LittleEndian.PutUint32(hl[:], uint32(rest.Len()))
	h.Write(hl[:])
	h.Write(rest.Bytes())
	h.Write(ops)
	var out bytes.Buffer
	var ul [4]byte
	binary.LittleEndian.PutUint32(ul[:], uint32(2+h.Len()))
	out.Write(ul[:])
	var v [2]byte
	binary.LittleEndian.PutUint16(v[:], version)
	out.Write(v[:])
	out.Write(h.Bytes())
	return out.Bytes()
}

func setAddress(a uint64) []byte {
	b := []byte{0, 9, lneSetAddress, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.LittleEndian.PutUint64(b[3:], a)
	return b
}

// TestLinesHandMade covers what compilers do not make: sequences out of
// address order in one program, nested sequences, DW_LNE_define_file, a
// file index beyond the table, and a damaged program between good ones.
func TestLinesHandMade(t *testing.T) {
	v4tables := []byte("/src\x00\x00a.c\x00\x01\x00\x00b.c\x00\x01\x00\x00\x00")
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	end := []byte{0, 1, lneEndSequence}
	special := func(addr, line int) byte { return byte(13 + (line + 5) + 14*addr) } // advance addr, then line
	// Program 1: a sequence at 0x2000 (line 10 at 0x2000, 11 at 0x2004),
	// then one at 0x1000 (file 2, line 20), each ending 0x10 on.
	p1 := lineProgram(4, v4tables, cat(
		setAddress(0x2000), []byte{lnsAdvanceLine, 9, lnsCopy, special(4, 1), lnsAdvancePC, 12}, end,
		setAddress(0x1000), []byte{lnsSetFile, 2, lnsAdvanceLine, 19, lnsCopy, lnsAdvancePC, 16}, end,
	))
	// Program 2 defines a third file and uses it at 0x3000; a sequence
	// inside the one at 0x2000 (0x2008-0x200c) says line 99.
	p2 := lineProgram(4, v4tables, cat(
		[]byte{0, 8, lneDefineFile}, []byte("c.c\x00\x01\x00\x00"),
		setAddress(0x3000), []byte{lnsSetFile, 3, lnsAdvanceLine, 4, lnsCopy, lnsAdvancePC, 8}, end,
		setAddress(0x2008), []byte{lnsAdvanceLine, 0xe2, 0, lnsCopy, lnsAdvancePC, 4}, end,
		setAddress(0x4000), []byte{lnsSetFile, 9, lnsCopy, lnsAdvancePC, 4}, end,
	))
	damaged := lineProgram(4, v4tables, []byte{0, 0x7f}) // an extended opcode longer than the program
	sec := cat(p1, damaged, p2)
	lt, err := newLineTable(sec, 8, false)
	if err == nil {
		t.Error("no error for the damaged program")
	}
	tests := []struct {
		addr uint64
		file string
		line int
	}{
		{0x0fff, "", 0},
		{0x1000, "/src/b.c", 20},
		{0x100f, "/src/b.c", 20},
		{0x1010, "", 0},
		{0x2000, "/src/a.c", 10},
		{0x2003, "/src/a.c", 10},
		{0x2004, "/src/a.c", 11},
		{0x2008, "/src/a.c", 99}, // the inner sequence
		{0x200c, "/src/a.c", 11}, // the outer one again
		{0x200f, "/src/a.c", 11},
		{0x2010, "", 0},
		{0x3000, "/src/c.c", 5},
		{0x4000, "", 0}, // file 9 does not exist
	}
	for _, tt := range tests {
		file, line, _ := lt.lookup(tt.addr)
		if file != tt.file || line != tt.line {
			t.Errorf("lookup(%#x) = %s:%d, want %s:%d", tt.addr, file, line, tt.file, tt.line)
		}
	}
}

// TestZdebugCap refuses a .zdebug section whose header claims more than
// MaxSection, before inflating it.
func TestZdebugCap(t *testing.T) {
	dir := t.TempDir()
	path := compileLines(t, dir, "gcc", "-g", "-O2")
	var z bytes.Buffer
	z.WriteString("ZLIB")
	binary.Write(&z, binary.BigEndian, uint64(objfile.MaxSection+1))
	w := zlib.NewWriter(&z)
	w.Write(make([]byte, 1<<16))
	w.Close()
	os.WriteFile(filepath.Join(dir, "z"), z.Bytes(), 0o644)
	run := exec.Command("objcopy", "--remove-section", ".debug_line", "--add-section", ".zdebug_line=z", path, filepath.Join(dir, "big"))
	run.Dir = dir
	if out, err := run.CombinedOutput(); err != nil {
		t.Fatalf("objcopy: %v\n%s", err, out)
	}
	obj, err := objfile.OpenInRoot("/", filepath.Join(dir, "big"))
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	if _, err := debugSection(obj, "line"); err == nil || !strings.Contains(err.Error(), objfile.ErrTooLarge.Error()) {
		t.Errorf("err = %v, want ErrTooLarge", err)
	}
}

// FuzzLineTable indexes arbitrary bytes as .debug_line and looks up
// addresses in them: nothing may panic, and allocations stay bounded by
// the input's size.
func FuzzLineTable(f *testing.F) {
	dir := f.TempDir()
	for i, flags := range [][]string{{"-gdwarf-5"}, {"-gdwarf-4"}} {
		for name, src := range lineSources {
			os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644)
		}
		out := filepath.Join(dir, fmt.Sprint("p", i))
		cmd := exec.Command("gcc", append(flags, "-g", "-O2", "-o", out, "a.c", "b.c")...)
		cmd.Dir = dir
		if cmd.Run() != nil {
			continue
		}
		if e, err := elf.Open(out); err == nil {
			if s := e.Section(".debug_line"); s != nil {
				if data, err := s.Data(); err == nil {
					f.Add(data, uint64(0x1139))
				}
			}
			e.Close()
		}
	}
	f.Add(lineProgram(4, []byte("/src\x00\x00a.c\x00\x01\x00\x00\x00"), append(setAddress(0x1000), lnsCopy, lnsAdvancePC, 4, 0, 1, lneEndSequence)), uint64(0x1000))
	f.Fuzz(func(t *testing.T, data []byte, addr uint64) {
		for _, be := range []bool{false, true} {
			lt, _ := newLineTable(data, 8, be)
			strs := map[string][]byte{".debug_str": data, ".debug_line_str": data}
			lt.strings = func(name string) ([]byte, error) { return strs[name], nil }
			lt.compDir = func(uint64) (string, error) { return "/comp", nil }
			lt.lookup(addr)
			for i, s := range lt.seqs {
				if i > 64 {
					break
				}
				lt.lookup(s.lo)
				lt.lookup(s.lo + (s.hi-s.lo)/2)
			}
		}
	})
}

// BenchmarkLineIndex indexes the host libc's line programs (from its
// debug file), the work of naming the first libc frame.
func BenchmarkLineIndex(b *testing.B) {
	p := libcDebugFile(&testing.T{})
	if p == "" {
		b.Skip("no libc debug file")
	}
	obj, err := objfile.OpenInRoot("/", p)
	if err != nil {
		b.Fatal(err)
	}
	defer obj.Close()
	data, err := debugSection(obj, "line")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := newLineTable(data, 8, false); err != nil {
			b.Fatal(err)
		}
	}
}

// TestLinesReadWhenAsked checks that making a table reads no DWARF, and
// that the first line asked for does.
func TestLinesReadWhenAsked(t *testing.T) {
	path := compileLines(t, t.TempDir(), "gcc", "-g", "-O2")
	obj, err := objfile.OpenInRoot("/", path)
	if err != nil {
		t.Fatal(err)
	}
	tab := loadTable(obj, nil)
	defer tab.close()
	if tab.linesDone || tab.lines != nil || tab.linesFrom != obj || len(tab.open) != 1 {
		t.Fatalf("after loadTable: lines read %v, index %v, kept open %d", tab.linesDone, tab.lines != nil, len(tab.open))
	}
	var main uint64
	for _, s := range tab.syms {
		if tab.name(s) == "main" {
			main = s.addr
		}
	}
	if fn, file, line := tab.lookup(main); fn != "main" || filepath.Base(file) != "a.c" || line == 0 {
		t.Errorf("lookup(main) = %s %s:%d", fn, file, line)
	}
	if !tab.linesDone || tab.lines == nil {
		t.Error("a line was asked for and the line tables were not read")
	}
	tab.close()
	if _, file, _ := tab.lookup(main); file != "" || len(tab.open) != 0 {
		t.Errorf("after close: file %q, %d files open", file, len(tab.open))
	}
}
