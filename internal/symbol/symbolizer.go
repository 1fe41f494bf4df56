package symbol

import (
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/cpuwhy/cpuwhy/internal/objfile"
	"github.com/cpuwhy/cpuwhy/internal/proc"
)

// Frame is one named code address of a process.
type Frame struct {
	Function string // "vpn::Session::pump", "" when nothing names the address
	File     string // source file, "" when unknown
	Line     int    // 0 when unknown
	Module   string // base name of the mapped file, "[vdso]", or "" when anonymous or unmapped
	Offset   uint64 // file offset in Module ("[vdso]": offset in the mapping)
	BuildID  string // of Module, "" when it has none
	Addr     uint64 // the address itself
	Mapped   bool   // whether a mapping covers Addr
}

// String gives the function and position when known, else the module and
// file offset, as Modules.Frame does: never "??" nor a bare address.
func (f Frame) String() string {
	switch {
	case f.Function != "" && f.File != "":
		return fmt.Sprintf("%s (%s:%d)", f.Function, path.Base(f.File), f.Line)
	case f.Function != "":
		return f.Function
	case !f.Mapped:
		return fmt.Sprintf("%#x (unmapped)", f.Addr)
	case f.Module == "":
		return fmt.Sprintf("%#x (anonymous code)", f.Addr)
	}
	return fmt.Sprintf("%s+%#x", f.Module, f.Offset)
}

// Missing is a module some address of which nothing could name, and how
// to get its symbols.
type Missing struct {
	Module  string // path of the module in its process
	BuildID string
	Hint    string
}

// Options configures a Symbolizer.
type Options struct {
	FS proc.FS // the proc filesystem; zero reads /proc
	// HostRoot is where host debug files are looked up
	// (HostRoot/usr/lib/debug/...); "" is "/", "-" disables the host.
	HostRoot string
	// DebugDirs are extra directories (--debug-dir) holding debug files
	// as .build-id/xx/rest.debug, as <path>.debug, by debuglink name, or
	// unstripped copies by base name.
	DebugDirs []string
	// MaxObjects bounds the objects whose tables are cached; 0 means 64.
	MaxObjects int
	// Tables, when set, is a cache of tables that outlives the
	// Symbolizer, shared with the Symbolizers before and after it (a
	// long-lived process's diagnoses, which run one at a time); Close
	// then leaves it. MaxObjects is its own.
	Tables *TableCache
}

// TableCache is the names read from objects, kept for the Symbolizers of
// a long-lived process: a bounded LRU keyed by objfile.Key (build-id, or
// path, device, inode, size and modification time), each evicted table's
// files closed. Symbolizers that share one must not run at the same time:
// one may evict a table the other is reading.
type TableCache struct{ c *objfile.Cache[*table] }

// NewTableCache returns a cache of the tables of at most max objects.
func NewTableCache(max int) *TableCache {
	return &TableCache{c: objfile.NewCache[*table](max, (*table).close)}
}

// Len is the number of tables cached.
func (c *TableCache) Len() int { return c.c.Len() }

// Symbolizer names addresses of processes: ELF symbols (.symtab, .dynsym,
// MiniDebugInfo, separate debug files), Go's pclntab and DWARF lines. It
// is safe for concurrent use.
type Symbolizer struct {
	opts   Options
	tables *objfile.Cache[*table]
	shared bool // tables is Options.Tables's

	mu      sync.Mutex
	procs   map[int]*procState
	missing map[objfile.Key]Missing
	errs    map[string]error // per module: why loading failed
}

type procState struct {
	maps   []proc.Mapping    // executable, sorted
	loaded map[uint64]*table // by mapping start
	failed map[uint64]error
	// past is set for mappings the process had before it ran exec
	// (Image): they are never read again, and their objects are opened
	// by path alone, since /proc/PID/map_files lists the new image's.
	past bool
}

// maxProcs bounds the processes whose mappings are remembered.
const maxProcs = 4096

// NewSymbolizer returns a Symbolizer.
func NewSymbolizer(opts Options) *Symbolizer {
	if opts.MaxObjects == 0 {
		opts.MaxObjects = 64
	}
	s := &Symbolizer{
		opts:    opts,
		procs:   map[int]*procState{},
		missing: map[objfile.Key]Missing{},
		errs:    map[string]error{},
	}
	if opts.Tables != nil {
		s.tables, s.shared = opts.Tables.c, true
	} else {
		s.tables = objfile.NewCache[*table](opts.MaxObjects, (*table).close)
	}
	return s
}

// Close releases the objects the Symbolizer keeps open to read their
// line tables when first asked, unless they are in a shared TableCache,
// which keeps them for the next Symbolizer. It may be used after Close:
// objects are then opened again.
func (s *Symbolizer) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.shared {
		s.tables.Clear()
	}
}

// Forget drops what is remembered of pid's mappings (call it when pid
// exits or execs).
func (s *Symbolizer) Forget(pid int) {
	s.mu.Lock()
	delete(s.procs, pid)
	s.mu.Unlock()
}

// Symbolize names pc, an address in process pid. An address nothing names
// still gets its module and offset; the error is for a process that
// cannot be read (proc.ErrGone when it is gone).
func (s *Symbolizer) Symbolize(pid int, pc uint64) (Frame, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps, err := s.proc(pid, false)
	if err != nil {
		return Frame{Addr: pc}, err
	}
	m, ok := findMapping(ps.maps, pc)
	if !ok {
		// Mapped since we looked (dlopen, JIT): look again once.
		if ps, err = s.proc(pid, true); err != nil {
			return Frame{Addr: pc}, err
		}
		if m, ok = findMapping(ps.maps, pc); !ok {
			return Frame{Addr: pc}, nil
		}
	}
	return s.name(pid, ps, m, pc), nil
}

// Image names the addresses of process pid by mappings it had earlier:
// those of the program it ran before an exec, for what was sampled then.
type Image struct {
	s   *Symbolizer
	pid int
	ps  *procState
}

// Image returns the names of process pid as it was mapped by maps (as
// /proc/PID/maps read before it ran exec). Objects are opened by the paths
// the mappings name, through the process's root: a file replaced since is
// not the one that ran, and a deleted one cannot be named.
func (s *Symbolizer) Image(pid int, maps []proc.Mapping) *Image {
	ps := &procState{loaded: map[uint64]*table{}, failed: map[uint64]error{}, past: true}
	for _, m := range maps {
		if m.Exec() {
			ps.maps = append(ps.maps, m)
		}
	}
	sort.Slice(ps.maps, func(i, j int) bool { return ps.maps[i].Start < ps.maps[j].Start })
	return &Image{s: s, pid: pid, ps: ps}
}

// Symbolize names pc as Symbolizer.Symbolize does, by the image's
// mappings.
func (im *Image) Symbolize(pc uint64) Frame {
	im.s.mu.Lock()
	defer im.s.mu.Unlock()
	m, ok := findMapping(im.ps.maps, pc)
	if !ok {
		return Frame{Addr: pc}
	}
	return im.s.name(im.pid, im.ps, m, pc)
}

// name names pc, which mapping m of process pid covers.
func (s *Symbolizer) name(pid int, ps *procState, m proc.Mapping, pc uint64) Frame {
	f := Frame{Addr: pc, Mapped: true}
	switch {
	case m.Path == "":
		return f
	case strings.HasPrefix(m.Path, "["):
		f.Module, f.Offset = m.Path, pc-m.Start
		return f
	}
	modPath := strings.TrimSuffix(m.Path, " (deleted)")
	f.Module, f.Offset = path.Base(modPath), pc-m.Start+m.Offset
	t, err := s.table(pid, ps, m)
	if err != nil {
		s.errs[modPath] = err
		return f
	}
	f.BuildID = t.obj.BuildID
	v, err := t.obj.PCToVaddr(pc, m)
	if err == nil {
		nerrs := len(t.errs)
		f.Function, f.File, f.Line = t.lookup(v)
		if len(t.errs) > nerrs { // the line tables, read on first use
			s.errs[modPath] = errors.Join(t.errs...)
		}
	}
	if f.Function == "" {
		s.noteMissing(modPath, t)
	}
	return f
}

// Errors returns, by module path, why a module could not be read, or which
// of its sources of names were there but unusable (damaged, too large).
func (s *Symbolizer) Errors() map[string]error {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]error, len(s.errs))
	for k, v := range s.errs {
		out[k] = v
	}
	return out
}

// MissingSymbols lists the modules holding addresses nothing could name,
// sorted by module.
func (s *Symbolizer) MissingSymbols() []Missing {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Missing, 0, len(s.missing))
	for _, m := range s.missing {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Module != out[j].Module {
			return out[i].Module < out[j].Module
		}
		return out[i].BuildID < out[j].BuildID
	})
	return out
}

func (s *Symbolizer) noteMissing(modPath string, t *table) {
	k := t.obj.Key()
	if _, ok := s.missing[k]; ok {
		return
	}
	s.missing[k] = Missing{Module: modPath, BuildID: t.obj.BuildID, Hint: hint(modPath, t)}
}

func hint(modPath string, t *table) string {
	var parts []string
	if id := t.obj.BuildID; len(id) > 2 {
		parts = append(parts,
			"install the distro's -dbgsym/-dbg (Debian, Ubuntu) or -debuginfo (Fedora) package for "+path.Base(modPath),
			fmt.Sprintf("or put its debug file at /usr/lib/debug/.build-id/%s/%s.debug (on the host or in the container) or in a --debug-dir", id[:2], id[2:]))
	} else {
		parts = append(parts, "it has no build-id: rebuild it without -s/strip, or give an unstripped copy in a --debug-dir as "+path.Base(modPath)+" or as "+strings.TrimPrefix(modPath, "/")+".debug")
	}
	if t.debuglink != "" {
		parts = append(parts, fmt.Sprintf("or put the debuglink file %s beside it, in its .debug/ or in a --debug-dir", t.debuglink))
	}
	if len(t.errs) > 0 {
		parts = append(parts, fmt.Sprintf("(symbols present but unreadable: %v)", errors.Join(t.errs...)))
	}
	return strings.Join(parts, "; ")
}

func (s *Symbolizer) proc(pid int, refresh bool) (*procState, error) {
	if ps, ok := s.procs[pid]; ok && !refresh {
		return ps, nil
	}
	all, err := s.opts.FS.Maps(pid)
	if err != nil {
		return nil, err
	}
	ps := &procState{loaded: map[uint64]*table{}, failed: map[uint64]error{}}
	if old, ok := s.procs[pid]; ok {
		ps.loaded, ps.failed = old.loaded, old.failed
	}
	for _, m := range all {
		if m.Exec() {
			ps.maps = append(ps.maps, m)
		}
	}
	sort.Slice(ps.maps, func(i, j int) bool { return ps.maps[i].Start < ps.maps[j].Start })
	if len(s.procs) >= maxProcs {
		clear(s.procs)
	}
	s.procs[pid] = ps
	return ps, nil
}

func findMapping(maps []proc.Mapping, pc uint64) (proc.Mapping, bool) {
	i := sort.Search(len(maps), func(i int) bool { return maps[i].End > pc })
	if i == len(maps) || pc < maps[i].Start {
		return proc.Mapping{}, false
	}
	return maps[i], true
}

// table returns the names of the object mapped by m, loading them once
// per object (by build-id, or path and inode).
func (s *Symbolizer) table(pid int, ps *procState, m proc.Mapping) (*table, error) {
	if t, ok := ps.loaded[m.Start]; ok && !t.closed {
		return t, nil
	}
	if err, ok := ps.failed[m.Start]; ok {
		return nil, err
	}
	open := objfile.Open
	if ps.past {
		open = objfile.OpenPast
	}
	obj, err := open(s.opts.FS, pid, m)
	if err != nil {
		ps.failed[m.Start] = err
		return nil, err
	}
	if t, ok := s.tables.Get(obj.Key()); ok && !t.closed {
		obj.Close()
		// Read for an earlier Symbolizer (a shared TableCache): what
		// was wrong with its sources is this one's to tell too.
		if len(t.errs) > 0 {
			s.errs[strings.TrimSuffix(m.Path, " (deleted)")] = errors.Join(t.errs...)
		}
		ps.loaded[m.Start] = t
		return t, nil
	}
	t := loadTable(obj, func(o *objfile.File, link string) *objfile.File {
		return s.findDebugFile(pid, o, link)
	})
	if len(t.errs) > 0 {
		s.errs[strings.TrimSuffix(m.Path, " (deleted)")] = errors.Join(t.errs...)
	}
	s.tables.Add(obj.Key(), t)
	ps.loaded[m.Start] = t
	return t, nil
}

// findDebugFile looks for obj's separate debug file: in the debug dirs
// first (what the user asked for), then in the target's root, then on the
// host. A candidate must carry obj's build-id when obj has one.
func (s *Symbolizer) findDebugFile(pid int, obj *objfile.File, link string) *objfile.File {
	dir := path.Dir(obj.Path)
	var std []string // paths under a root
	if id := obj.BuildID; len(id) > 2 {
		std = append(std, "/usr/lib/debug/.build-id/"+id[:2]+"/"+id[2:]+".debug")
	}
	if link != "" {
		std = append(std, path.Join(dir, link), path.Join(dir, ".debug", link), path.Join("/usr/lib/debug", dir, link))
	}
	if obj.Path != "" && path.IsAbs(obj.Path) {
		std = append(std, path.Join("/usr/lib/debug", obj.Path+".debug"))
	}
	type try struct{ root, path string }
	var tries []try
	for _, d := range s.opts.DebugDirs {
		if id := obj.BuildID; len(id) > 2 {
			tries = append(tries, try{d, ".build-id/" + id[:2] + "/" + id[2:] + ".debug"})
		}
		if link != "" {
			tries = append(tries, try{d, link})
		}
		tries = append(tries, try{d, strings.TrimPrefix(obj.Path, "/") + ".debug"}, try{d, path.Base(obj.Path)})
	}
	for _, p := range std {
		tries = append(tries, try{s.opts.FS.PIDPath(pid, "root"), p})
	}
	if s.opts.HostRoot != "-" {
		host := s.opts.HostRoot
		if host == "" {
			host = "/"
		}
		for _, p := range std {
			tries = append(tries, try{host, p})
		}
	}
	for _, tr := range tries {
		if tr.path == "" || tr.path == "." {
			continue
		}
		f, err := objfile.OpenInRoot(tr.root, tr.path)
		if err != nil {
			continue
		}
		if f.BuildID != obj.BuildID || (f.Dev == obj.Dev && f.Ino == obj.Ino) {
			f.Close()
			continue
		}
		f.Path = path.Join(tr.root, tr.path)
		return f
	}
	return nil
}
