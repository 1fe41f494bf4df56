package perfmap

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/stack"
	"github.com/cpuwhy/cpuwhy/internal/sys"
	"github.com/cpuwhy/cpuwhy/internal/unwind"
)

// Kind is the Kind of the frames a perf map names. A map does not say
// which runtime wrote it (node, CPython, a JVM agent, a hand-made JIT):
// the kind says where the name came from, and the name itself, as the
// runtime wrote it ("JS:*hot file.js:2:17", "py::hot:/app/hot.py"),
// says the rest.
const Kind stack.Kind = "perfmap"

// rereadInterval bounds how often the map is looked at again for an
// address in anonymous code that it does not name: code run before its
// line reached the file (the writer buffers) would otherwise cost a look
// at every sample. A look at a map that did not grow is one openat2 and
// one fstat.
const rereadInterval = 100 * time.Millisecond

func init() { stack.Register(Runtime{}) }

// Runtime is the perf map runtime. Limits zero: DefaultLimits.
type Runtime struct {
	Limits Limits
}

// Name is Kind.
func (Runtime) Name() stack.Kind { return Kind }

// Attach prepares to name p's anonymous code from the map p writes, and
// reads what is in it. It never fails: a process may write its map later
// (CPython opens it at the first call, a JVM agent when attached), and a
// map that cannot be read is said in Notes when frames were left without
// a name for want of it. A HotSpot JVM (libjvm.so mapped) is left to the
// hotspot runtime, which follows the same map with Follow and knows when
// the JVM rewrote it.
func (rt Runtime) Attach(p stack.Process) (stack.Instance, error) {
	for _, m := range p.Maps {
		if strings.HasSuffix(m.Path, "/libjvm.so") {
			return nil, nil
		}
	}
	return Follow(p, rt.Limits), nil
}

// Follow prepares to name p's anonymous code from the map p writes, as
// Attach does, for a runtime that builds on the map (limits zero:
// DefaultLimits).
func Follow(p stack.Process, lim Limits) *Map {
	nspid := p.NsPID
	if nspid == 0 {
		nspid = p.PID
	}
	in := &Map{
		pid:         p.PID,
		root:        p.FS.PIDPath(p.PID, "root"),
		path:        "/tmp/perf-" + strconv.Itoa(nspid) + ".map",
		lim:         lim,
		table:       NewTable(lim),
		now:         time.Now,
		mem:         p.Mem,
		trampolines: map[uint64]*unwind.Table{},
	}
	in.read()
	return in
}

// Path is the map's path, as the process names it.
func (in *Map) Path() string { return in.path }

// Symbol returns the symbol of the map that holds addr.
func (in *Map) Symbol(addr uint64) (Symbol, bool) { return in.table.Symbol(addr) }

// Found reports whether the map existed at the last look.
func (in *Map) Found() bool { return in.found }

// Reread reads the map again from its start: its writer rewrote it in
// place (a JVM's Compiler.perfmap opens it with "w", keeping its inode),
// which the growth of the file cannot tell.
func (in *Map) Reread() {
	in.ino = 0 // no file has inode 0: the next read starts over
	in.read()
}

// Map follows the map of one process: a stack.Instance.
type Map struct {
	pid   int
	root  string // the process's root directory, through /proc
	path  string // the map's path in that root
	lim   Limits
	table *Table
	now   func() time.Time
	mem   unwind.Memory // the process's memory, for the code of trampolines

	// trampolines is what the code at a symbol's start was found to be:
	// a CPython trampoline's call frame information, or nil.
	trampolines map[uint64]*unwind.Table

	// The file the table was read from, and how far: a file of another
	// inode, or shorter than what was read, is a new map.
	dev, ino uint64
	off      int64
	found    bool  // the map exists, as of the last look
	readErr  error // why the last look failed, other than no map
	lastRead time.Time

	// Samples with a frame in anonymous code that the map did not name,
	// and with a frame it named.
	unnamed, named int
	// version counts the reads that changed the table (NamesVersion).
	version uint64
}

// NamesVersion changes whenever the table was read again and may name
// more, or other, addresses: a stack.AddressNamer.
func (in *Map) NamesVersion() uint64 { return in.version }

// Expand names the frames nothing else named: anonymous code, code mapped
// since the resolver read the mappings, and code in objects without
// symbols, when the map has the address. Named frames keep their module
// and offset, so the address can still be found.
func (in *Map) Expand(tid int, pcs []uint64, frames []stack.Frame) []stack.Frame {
	var named, unnamed bool
	for i := range frames {
		f := &frames[i]
		if f.Function != "" || f.Kind != stack.Native {
			continue
		}
		var addr uint64
		anon := f.InUnmappedCode()
		switch {
		case anon:
			addr = f.Offset // the address itself, the call for a caller
		case len(pcs) == len(frames):
			addr = pcs[i]
			if i > 0 && addr > 0 {
				addr-- // a return address: name the call
			}
		default:
			continue
		}
		name, ok := in.table.Lookup(addr)
		if !ok && anon && in.now().Sub(in.lastRead) >= rereadInterval {
			in.read()
			name, ok = in.table.Lookup(addr)
		}
		if !ok {
			unnamed = unnamed || anon
			continue
		}
		f.Kind, f.Function = Kind, string(name)
		named = true
	}
	if named {
		in.named++
	}
	if unnamed {
		in.unnamed++
	}
	return frames
}

// Sync reads what was added to the map: the process mapped new code, and
// may have written its names.
func (in *Map) Sync([]proc.Mapping) { in.read() }

// read reads the part of the map not read yet. It opens the file anew
// each time, through the process's root and as the process names it, so
// that a map replaced since (the process truncated it, or exec'd) is read
// from its start.
func (in *Map) read() {
	in.lastRead = in.now()
	if in.table.Stats().Full {
		return
	}
	f, err := sys.OpenInRoot(in.root, in.path)
	if err != nil {
		in.found, in.readErr = false, err
		if errors.Is(err, fs.ErrNotExist) {
			in.readErr = nil // no map (yet): not an error
		}
		return
	}
	defer f.Close()
	in.found, in.readErr = true, nil
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		in.readErr = fmt.Errorf("stat of %s: %w", in.path, err)
		return
	}
	if uint64(st.Dev) != in.dev || st.Ino != in.ino || st.Size < in.off {
		if in.off > 0 {
			in.table = NewTable(in.lim)
			clear(in.trampolines)
			in.version++
		}
		in.dev, in.ino, in.off = uint64(st.Dev), st.Ino, 0
	}
	if st.Size == in.off {
		return
	}
	// Up to the size seen: lines written from now on are read next time.
	n, err := in.table.Read(io.NewSectionReader(f, in.off, st.Size-in.off))
	in.off += n
	in.version++
	if err != nil && !errors.Is(err, ErrFull) {
		in.readErr = fmt.Errorf("reading %s: %w", in.path, err)
	}
}

// Notes says why frames in anonymous code were left without a name (no
// map, a map that could not be read), and what was skipped of a map that
// was damaged or too large.
func (in *Map) Notes() []string {
	var notes []string
	switch {
	case in.unnamed == 0:
	case in.readErr != nil:
		notes = append(notes, fmt.Sprintf("%d samples were in anonymous code (a JIT's) that nothing named: the process's perf map could not be read: %v", in.unnamed, in.readErr))
	case !in.found && in.table.Stats().Entries == 0:
		notes = append(notes, fmt.Sprintf("%d samples were in anonymous code (a JIT's) that nothing named, printed as [anon]+0xADDRESS: the process writes no perf map (%s, as it sees its files; node --perf-basic-prof, python3.12 -X perf and Java's perf-map-agent write one)", in.unnamed, in.path))
	}
	return append(notes, in.DamageNotes()...)
}

// ReadError is why the map could not be read at the last look (nil when
// it was, or when there is none).
func (in *Map) ReadError() error { return in.readErr }

// DamageNotes says what was skipped of a map that was damaged or too
// large.
func (in *Map) DamageNotes() []string {
	st := in.table.Stats()
	var damage []string
	if st.Malformed > 0 {
		damage = append(damage, fmt.Sprintf("%d malformed lines of %d skipped", st.Malformed, st.Lines))
	}
	if st.LongNames > 0 {
		damage = append(damage, fmt.Sprintf("%d names cut to %d bytes", st.LongNames, in.table.lim.MaxName))
	}
	if st.Full {
		damage = append(damage, fmt.Sprintf("read no further than %d symbols in %d bytes (the limits are %d symbols, %d bytes): code named past that prints as [anon]+0xADDRESS", st.Entries, st.Bytes, in.table.lim.MaxEntries, in.table.lim.MaxBytes))
	}
	if len(damage) == 0 {
		return nil
	}
	return []string{fmt.Sprintf("perf map %s of process %d: %s", in.path, in.pid, strings.Join(damage, "; "))}
}

// Detach does nothing: no file is kept open between reads.
func (in *Map) Detach() {}
