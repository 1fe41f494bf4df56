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
)

// Shared is what the resolvers of one long-lived process (cpuwhy agent,
// which diagnoses again and again) share, so that each diagnosis does
// not redo it: the kernel's symbols, and the names read from objects
// (libc's tables, a program's line tables), in a bounded cache keyed by
// each file's identity. A one-shot command needs none (Options.Shared
// nil). Its resolvers must run one at a time, as the agent's diagnoses
// do; it holds one copy of each thing and at most maxSharedObjects
// objects' names, so that it stays the same size however many diagnoses
// use it.
type Shared struct {
	tables *symbol.TableCache

	mu sync.Mutex
	// ksyms is the last reading of kallsyms under root, taken when the
	// kernel's modules were modules.
	ksyms   *sample.KernelSymbols
	root    string
	modules []byte
	reads   int
}

// maxSharedObjects bounds the objects whose names a Shared keeps, as a
// Symbolizer's own cache does (symbol.Options.MaxObjects).
const maxSharedObjects = 64

// NewShared returns an empty Shared.
func NewShared() *Shared { return &Shared{tables: symbol.NewTableCache(maxSharedObjects)} }

// maxModules bounds the reading of /proc/modules kept to tell a change:
// a few hundred modules take some 20 KiB.
const maxModules = 1 << 20

// KernelSymbols returns the kernel's symbols under fs's root: /proc/kallsyms
// is read and parsed once (about half of a diagnosis's set-up CPU on this
// VM: 100 of 230 ms), and again when /proc/modules, a few KiB, says that
// the kernel's modules changed (it cannot tell when it cannot be read;
// a kernel built without modules has none), or when fs is another root. What the
// reading does not follow is code the kernel makes without a module: BPF
// programs and trampolines loaded since are named by the nearest symbol
// before them, as an address past the last function is.
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
	root := fs.Path()
	if s.ksyms != nil && s.root == root && modules != nil && bytes.Equal(modules, s.modules) {
		return s.ksyms, nil
	}
	k, err := sample.ReadKernelSymbols(fs)
	if err != nil {
		return nil, fmt.Errorf("sharing the kernel's symbols: %w", err)
	}
	s.ksyms, s.root, s.modules = k, root, modules
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
