package stack

import (
	"bytes"
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"sync"

	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/sample"
	"github.com/cpuwhy/cpuwhy/internal/symbol"
	"github.com/cpuwhy/cpuwhy/internal/unwind"
)

// Shared is what the resolvers of one long-lived process (cpuwhy agent,
// which diagnoses again and again) share, so that each diagnosis does
// not redo it: the kernel's symbols, the names read from objects (libc's
// tables, a program's line tables) and their unwinding tables (call
// frame information), in bounded caches keyed by each file's identity.
// A one-shot command needs none (Options.Shared nil). Its resolvers must
// run one at a time, as the agent's diagnoses do; it holds one copy of
// each thing, at most maxSharedObjects objects' names and
// maxUnwindBytes of unwinding tables, so that it stays the same size
// however many diagnoses use it.
type Shared struct {
	tables *symbol.TableCache
	// unwind is the objects' unwinding tables; nil: each resolver
	// reads its own (KeepUnwindTables(0)).
	unwind *unwind.Cache

	mu sync.Mutex
	// ksyms is the last reading of kallsyms under root, taken when the
	// kernel's modules were modules.
	ksyms   *sample.KernelSymbols
	root    string
	modules []byte
	gen     int
	reads   int
	// changes, when set, counts the kernel code the process itself
	// loaded (its BPF programs, whose JIT images kallsyms names).
	changes func() int
}

// FollowKernelCode tells s of a count that goes up whenever the process
// itself loads kernel code: its BPF programs (ebpf.Tracer.Loads), which
// run in its targets' syscalls and so appear in their kernel stacks. The
// kernel's symbols are read again when it changes, so that those frames
// are named.
func (s *Shared) FollowKernelCode(changes func() int) {
	s.mu.Lock()
	s.changes = changes
	s.mu.Unlock()
}

// maxSharedObjects bounds the objects whose names a Shared keeps, as a
// Symbolizer's own cache does (symbol.Options.MaxObjects).
const maxSharedObjects = 64

// maxUnwindBytes bounds the unwinding tables a Shared keeps, by the
// bytes they hold (their .eh_frame and .debug_frame, 16 bytes of index
// per function): libc's take 210 KiB, a JVM's libjvm.so 2.2 MiB and
// node's binary 3.9 MiB.
const maxUnwindBytes = 32 << 20

// NewShared returns an empty Shared.
func NewShared() *Shared {
	return &Shared{tables: symbol.NewTableCache(maxSharedObjects), unwind: unwind.NewCache(maxUnwindBytes)}
}

// KeepUnwindTables bounds the unwinding tables s keeps to maxBytes (0:
// none, each resolver reads its own). Set it before s is used; the
// tables kept so far are dropped.
func (s *Shared) KeepUnwindTables(maxBytes int64) {
	s.unwind = nil
	if maxBytes > 0 {
		s.unwind = unwind.NewCache(maxBytes)
	}
}

// UnwindTables is the unwinding tables s keeps: how many objects' and
// their bytes.
func (s *Shared) UnwindTables() (objects int, bytes int64) {
	if s.unwind == nil {
		return 0, 0
	}
	return s.unwind.Len(), s.unwind.Bytes()
}

// unwindTables is the cache of unwinding tables a resolver uses; nil
// (its own) without a Shared.
func (s *Shared) unwindTables() *unwind.Cache {
	if s == nil {
		return nil
	}
	return s.unwind
}

// maxModules bounds the reading of /proc/modules kept to tell a change:
// a few hundred modules take some 20 KiB.
const maxModules = 1 << 20

// KernelSymbols returns the kernel's symbols under fs's root: /proc/kallsyms
// is read and parsed once (about half of a diagnosis's set-up CPU on this
// VM: 100 of 230 ms), and again when /proc/modules, a few KiB, says that
// the kernel's modules changed (it cannot tell when it cannot be read;
// a kernel built without modules has none), when the process loaded BPF
// programs of its own (FollowKernelCode), or when fs is another root.
// What the reading does not follow is code other programs make the
// kernel load without a module: their BPF programs and trampolines loaded
// since are named by the nearest symbol before them, as an address past
// the last function is.
func (s *Shared) KernelSymbols(fs proc.FS) (*sample.KernelSymbols, error) {
	modules, err := os.ReadFile(fs.Path("modules"))
	switch {
	case errors.Is(err, iofs.ErrNotExist):
		modules = []byte{} // a kernel without modules: they cannot change
	case err != nil:
		modules = nil // cannot tell: read kallsyms again
	}
	if len(modules) > maxModules {
		modules = nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	gen := 0
	if s.changes != nil {
		gen = s.changes()
	}
	root := fs.Path()
	if s.ksyms != nil && s.root == root && modules != nil && bytes.Equal(modules, s.modules) && gen == s.gen {
		return s.ksyms, nil
	}
	k, err := sample.ReadKernelSymbols(fs)
	if err != nil {
		return nil, fmt.Errorf("sharing the kernel's symbols: %w", err)
	}
	s.ksyms, s.root, s.modules, s.gen = k, root, modules, gen
	s.reads++
	return k, nil
}

// symbolTables is the cache of objects' names a resolver's symbolizer
// uses; nil (its own) without a Shared.
func (s *Shared) symbolTables() *symbol.TableCache {
	if s == nil {
		return nil
	}
	return s.tables
}

// Objects is how many objects' names s keeps (at most maxSharedObjects),
// each with up to two files open (the object, its debug file) until its
// line tables are read or it is evicted.
func (s *Shared) Objects() int { return s.tables.Len() }
