package hotspot

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/stack"
	"github.com/cpuwhy/cpuwhy/internal/stack/perfmap"
	"github.com/cpuwhy/cpuwhy/internal/sys"
	"github.com/cpuwhy/cpuwhy/internal/unwind"
)

// Kind is the Kind of the frames this runtime names.
const Kind stack.Kind = "hotspot"

// Timings of the requests to the JVM.
const (
	// defaultWait bounds each step of a request (the listener starting,
	// the answer): the JVM answers once it reaches a safepoint, which a
	// JVM under GC pressure on a loaded machine may take seconds to.
	defaultWait = 5 * time.Second
	// refreshInterval is the least time between two requests: the JIT
	// keeps compiling (a method at a higher tier, an OSR version), and
	// each new method is a sample cpuwhy cannot name until the next
	// dump, but a dump costs the JVM a walk of its code cache and a
	// file of ~60 bytes per method.
	refreshInterval = 5 * time.Second
	// maxDumps bounds the requests over one resolver's life.
	maxDumps = 12
	// maxNames bounds the cache of method names made from the map's.
	maxNames = 1 << 16
	// staleSlack is how much older than the process a map may be and
	// still be its own: the clocks compared (the file's time, the
	// process's start in ticks since boot) are a tick and a rounding
	// apart.
	staleSlack = 2 * time.Second
)

func init() { stack.Register(Runtime{}) }

// Runtime is the HotSpot runtime. Zero fields take the defaults.
type Runtime struct {
	Limits perfmap.Limits
	Wait   time.Duration // bound on each step of a request to the JVM
}

// Name is Kind.
func (Runtime) Name() stack.Kind { return Kind }

// IsJVM reports whether a process with mappings maps runs HotSpot.
func IsJVM(maps []proc.Mapping) bool {
	for _, m := range maps {
		if strings.HasSuffix(m.Path, "/libjvm.so") {
			return true
		}
	}
	return false
}

// Attach follows the perf map of a JVM (p maps libjvm.so), and asks the
// JVM to write it, unless p.NoAttach, when code it compiled is sampled
// that the map does not name. It never fails: what could not be named is
// said in Notes.
func (rt Runtime) Attach(p stack.Process) (stack.Instance, error) {
	if !IsJVM(p.Maps) {
		return nil, nil
	}
	wait := rt.Wait
	if wait <= 0 {
		wait = defaultWait
	}
	nspid := p.NsPID
	if nspid == 0 {
		nspid = p.PID
	}
	in := &instance{
		proc:     p,
		pid:      p.PID,
		noAttach: p.NoAttach,
		wait:     wait,
		names:    map[string]string{},
		tables:   map[uint64]*methodTable{},
		att:      &attacher{fs: p.FS, pid: p.PID, nspid: nspid, root: p.FS.PIDPath(p.PID, "root"), wait: wait},
		m:        perfmap.Follow(p, rt.Limits),
	}
	in.stale = in.m.Found() && mapOlderThanProcess(p.FS, p.PID, in.att.root, in.m.Path())
	for _, m := range p.Maps {
		if strings.HasSuffix(m.Path, "/libjvm.so") {
			in.jdk = jdkMajor(in.att.root, m.Path)
			break
		}
	}
	return in, nil
}

// mapOlderThanProcess reports whether the map at path was last written
// before the process started: an earlier process's with the same PID (a
// container's PID 1, a /tmp that outlived a JVM), whose names would be
// wrong for this one's code.
func mapOlderThanProcess(fs proc.FS, pid int, root, path string) bool {
	f, err := sys.OpenInRoot(root, path)
	if err != nil {
		return false
	}
	defer f.Close()
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) != nil {
		return false
	}
	data, err := fs.ReadCapped(4096, strconv.Itoa(pid), "stat")
	if err != nil {
		return false
	}
	ps, err := proc.ParseStat(data)
	if err != nil {
		return false
	}
	const ticks = 100 // USER_HZ, the unit of starttime on every Linux
	started := time.Now().Add(-sys.SinceBoot()).Add(time.Duration(ps.StartTime) * time.Second / ticks)
	return time.Unix(st.Mtim.Unix()).Before(started.Add(-staleSlack))
}

// instance names the frames of one JVM.
type instance struct {
	proc     stack.Process
	pid      int
	noAttach bool
	wait     time.Duration
	att      *attacher
	m        *perfmap.Map
	// stale: the map found at Attach is older than the process, and
	// names nothing until the JVM writes it again.
	stale bool
	// jdk is the JDK's major version from its release file; 0 unknown.
	jdk int

	names map[string]string // method names, by the map's names

	// Requests to the JVM: the one in flight answers on pending.
	pending chan error
	lastAsk time.Time
	dumps   int   // requests answered
	asked   int   // requests made
	failed  error // why the last request failed; no more are made
	unnamed int   // samples with code of the JIT that nothing named
	named   int   // samples with a frame named from the map

	// Interpreted frames' methods, from HotSpot's VMStructs: opened at
	// the first interpreted frame; methodsErr says why not.
	methods     *methods
	methodsErr  error
	interpreted int // interpreted frames whose method was not named

	// tables are compiled methods' unwinding, by the code's start; nil
	// for code that is not unwound so.
	tables map[uint64]*methodTable
}

// interpreterName is what the JVM's perf map calls its interpreter.
const interpreterName = "Interpreter"

// ExpandStack names the frames as Expand does, and each interpreted
// frame by the method it runs, read from the frame (its Method*, below
// its frame pointer) and HotSpot's structures: "Huge.hugeLoop
// (interpreted)".
func (in *instance) ExpandStack(tid int, pcs, fps []uint64, stk unwind.Memory, frames []stack.Frame) []stack.Frame {
	frames = in.expand(tid, pcs, frames)
	defer in.count(frames)
	for i := range frames {
		f := &frames[i]
		if i >= len(fps) || fps[i] == 0 || i >= len(pcs) {
			continue
		}
		named := f.Kind == Kind && f.Function == interpreterName
		unnamed := f.Function == "" && f.InUnmappedCode()
		if !named && !unnamed {
			continue
		}
		if in.methods == nil && in.methodsErr == nil {
			in.methods, in.methodsErr = openJVM(in.proc.FS, in.proc.PID, in.proc.Maps, in.proc.Mem)
		}
		if unnamed {
			// Without the map (--no-attach, a JDK before 17), the
			// interpreter is known by its code's range in the JVM.
			if in.methods == nil || !in.methods.l.interpreter(pcs[i]) {
				continue
			}
			f.Kind, f.Function = Kind, interpreterName
		}
		if in.methods == nil {
			in.interpreted++
			continue
		}
		var b [8]byte
		if n, err := (frameMemory{stk, in.proc.Mem}).ReadAt(b[:], fps[i]-uint64(-interpreterMethodOffset)); err != nil || n != 8 {
			in.interpreted++
			continue
		}
		name, ok := in.methods.name(binary.LittleEndian.Uint64(b[:]))
		if !ok {
			in.interpreted++
			continue
		}
		f.Function = name + " (interpreted)"
	}
	return frames
}

// frameMemory reads a frame's slots from the stack copied with the
// sample, or from the process for frames past it.
type frameMemory struct {
	stack, live unwind.Memory
}

func (m frameMemory) ReadAt(p []byte, addr uint64) (int, error) {
	if m.stack != nil {
		if n, err := m.stack.ReadAt(p, addr); err == nil {
			return n, nil
		}
	}
	if m.live == nil {
		return 0, errors.New("no memory")
	}
	return m.live.ReadAt(p, addr)
}

// Expand names the frames in code the JVM generated (compiled methods,
// the interpreter, stubs) from its perf map, asking the JVM for the map
// when a frame in such code is not in it.
func (in *instance) Expand(tid int, pcs []uint64, frames []stack.Frame) []stack.Frame {
	frames = in.expand(tid, pcs, frames)
	in.count(frames)
	return frames
}

// expand is Expand without counting what was left unnamed.
func (in *instance) expand(tid int, pcs []uint64, frames []stack.Frame) []stack.Frame {
	in.collect(0)
	frames = in.name(tid, pcs, frames)
	if in.unnamedCode(frames) && in.ask() {
		frames = in.name(tid, pcs, frames)
	}
	return frames
}

// count counts a sample whose frames in the JVM's code were not all
// named.
func (in *instance) count(frames []stack.Frame) {
	if in.unnamedCode(frames) {
		in.unnamed++
	}
}

// name names frames from the map, and makes its names of methods what a
// Java stack trace says.
func (in *instance) name(tid int, pcs []uint64, frames []stack.Frame) []stack.Frame {
	if in.stale {
		return frames
	}
	frames = in.m.Expand(tid, pcs, frames)
	named := false
	for i := range frames {
		f := &frames[i]
		if f.Kind != perfmap.Kind {
			continue
		}
		f.Kind, named = Kind, true
		if m, ok := in.names[f.Function]; ok {
			f.Function = m
			continue
		}
		m, ok := MethodName(f.Function)
		if !ok {
			m = f.Function // the interpreter, a stub: as the JVM names it
		}
		if len(in.names) < maxNames {
			in.names[f.Function] = m
		}
		f.Function = m
	}
	if named {
		in.named++
	}
	return frames
}

// unnamedCode reports whether a frame is in anonymous code that nothing
// named: in a JVM, its code cache.
func (in *instance) unnamedCode(frames []stack.Frame) bool {
	for _, f := range frames {
		if f.Function == "" && f.InUnmappedCode() {
			return true
		}
	}
	return false
}

// ask asks the JVM for its perf map, unless that is forbidden, failed
// before, or was done less than refreshInterval ago, and waits for the
// answer (at most the request's own bound). It reports whether the map
// was written again and read.
func (in *instance) ask() bool {
	if in.noAttach || in.failed != nil {
		return false
	}
	if in.jdk > 0 && in.jdk < perfmapSince {
		// Not worth an intrusion: the JVM would start its listener
		// and refuse the command.
		in.failed = fmt.Errorf("the JVM is JDK %d, which has no Compiler.perfmap (JDK %d+): it was not asked", in.jdk, perfmapSince)
		return false
	}
	if in.pending == nil {
		if in.asked >= maxDumps || in.asked > 0 && time.Since(in.lastAsk) < refreshInterval {
			return false
		}
		in.asked++
		in.lastAsk = time.Now()
		in.pending = make(chan error, 1)
		go func(done chan<- error) {
			_, err := in.att.run("Compiler.perfmap")
			done <- err
		}(in.pending)
	}
	return in.collect(2*in.wait + time.Second)
}

// collect takes the answer to the request in flight, waiting at most
// wait for it, and reads the map the JVM wrote. It reports whether there
// was an answer that wrote it.
func (in *instance) collect(wait time.Duration) bool {
	if in.pending == nil {
		return false
	}
	var err error
	if wait <= 0 {
		select {
		case err = <-in.pending:
		default:
			return false
		}
	} else {
		timer := time.NewTimer(wait)
		defer timer.Stop()
		select {
		case err = <-in.pending:
		case <-timer.C:
			in.pending, in.failed = nil, fmt.Errorf("the JVM did not answer within %v", wait)
			return false
		}
	}
	in.pending = nil
	if err != nil {
		in.failed = err
		return false
	}
	in.dumps++
	in.stale = false
	in.m.Reread()
	return true
}

// Sync reads what was added to the map.
func (in *instance) Sync(maps []proc.Mapping) { in.m.Sync(maps) }

// Notes says that the JVM was asked for its map (an intrusion, however
// small), or why code it compiled was left without a name.
func (in *instance) Notes() []string {
	var notes []string
	if in.asked > 0 && (in.dumps > 0 || in.failed == nil) {
		notes = append(notes, fmt.Sprintf("asked the JVM (PID %d) for its perf map through its attach mechanism (jcmd Compiler.perfmap), %s: it wrote %s in its own /tmp, and keeps the Attach Listener thread it started for it; --no-attach forbids this",
			in.pid, times(in.dumps), in.m.Path()))
	}
	switch {
	case in.unnamed == 0:
	case in.noAttach && in.stale:
		notes = append(notes, fmt.Sprintf("%d samples in code the JVM generated (compiled methods, stubs) were not named: its perf map %s is older than the process (an earlier process's with the same PID), and --no-attach forbids asking the JVM for a new one", in.unnamed, in.m.Path()))
	case in.noAttach:
		notes = append(notes, fmt.Sprintf("%d samples in code the JVM generated (compiled methods, stubs) were not named: --no-attach forbids asking the JVM for its perf map (`jcmd PID Compiler.perfmap`, JDK 17+, writes one; so do -XX:+DumpPerfMapAtExit at exit and perf-map-agent)", in.unnamed))
	case in.failed != nil:
		reason := in.failed.Error()
		if errors.Is(in.failed, ErrRefused) {
			reason += " (Compiler.perfmap needs JDK 17 or later)"
		}
		notes = append(notes, fmt.Sprintf("%d samples in code the JVM generated (compiled methods, stubs) were not named: asking it for its perf map failed: %s", in.unnamed, reason))
	default:
		notes = append(notes, fmt.Sprintf("%d samples in code the JVM generated were not in its perf map (compiled since the JVM last wrote it)", in.unnamed))
	}
	if in.interpreted > 0 {
		reason := "their frames could not be read"
		if in.methodsErr != nil {
			reason = "reading HotSpot's VMStructs failed: " + in.methodsErr.Error()
		}
		notes = append(notes, fmt.Sprintf("%d interpreted frames are named Interpreter, not by their method: %s", in.interpreted, reason))
	}
	if err := in.m.ReadError(); err != nil && in.unnamed > 0 {
		notes = append(notes, fmt.Sprintf("the JVM's perf map could not be read: %v", err))
	}
	return append(notes, in.m.DamageNotes()...)
}

func times(n int) string {
	switch n {
	case 0:
		return "with no answer yet"
	case 1:
		return "once"
	}
	return fmt.Sprintf("%d times", n)
}

// Detach lets the JVM go: a request in flight ends on its own bound.
func (in *instance) Detach() {}
