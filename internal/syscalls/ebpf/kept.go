package ebpf

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	pyebpf "github.com/cpuwhy/cpuwhy/internal/stack/python/ebpf"
	"github.com/cpuwhy/cpuwhy/internal/syscalls"
)

// NewKept returns a Tracer that keeps its programs loaded from one trace
// to the next, for a long-lived process that traces again and again (the
// agent): loading and verifying them costs 16 to 22 ms of CPU, each time,
// where setting the target and emptying the tables costs a few syscalls.
// The target is the one thing the programs read that changes between
// traces; it is a global the programs load (target_tgid, in .bss), not a
// load-time constant, so the set serves any process. A trace with other
// options (timing, stacks, table size: constants the verifier prunes by)
// loads a set for them in place of the one kept. Close releases the set;
// the kernel memory of its tables stays taken until then (the spill
// table's MaxKeys entries, and with stacks the 4 MiB stack map).
func NewKept() *Tracer { return &Tracer{keep: &kept{}} }

// kept is the programs of a Tracer made by NewKept.
type kept struct {
	mu   sync.Mutex
	objs *syscallsObjects
	key  loadKey
	busy bool // a trace uses objs
	// closing: Close was called while busy; the trace releases objs.
	closing bool
	// loads counts the sets loaded.
	loads int
}

// loadKey is what a loaded set is made for, besides the target.
type loadKey struct {
	timeEvery, maxKeys int
	stacks             bool
	python             bool          // walksPython
	layout             pyebpf.Layout // of the Python walk, when python
}

func keyOf(opts syscalls.Options) loadKey {
	k := loadKey{timeEvery: opts.TimeEvery, maxKeys: opts.MaxKeys, stacks: opts.Stacks, python: walksPython(opts)}
	if k.python {
		k.layout, _ = opts.Chains.WalkLayout() // an error fails the load
	}
	return k
}

// Loads is how many program sets a Tracer made by NewKept has loaded (0
// for another): each put new JIT images in the kernel, which kallsyms
// names (stack.Shared.FollowKernelCode).
func (t *Tracer) Loads() int {
	if t.keep == nil {
		return 0
	}
	t.keep.mu.Lock()
	defer t.keep.mu.Unlock()
	return t.keep.loads
}

// Close releases the programs a Tracer made by NewKept keeps; it may
// trace again after, and loads them again.
func (t *Tracer) Close() error {
	if t.keep == nil {
		return nil
	}
	k := t.keep
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.busy {
		k.closing = true // the trace under way releases them
		return nil
	}
	if k.objs == nil {
		return nil
	}
	err := k.objs.Close()
	k.objs = nil
	return err
}

// programs returns the programs for a trace of pid, and what to call when
// the trace is done with them.
func (t *Tracer) programs(pid int, opts syscalls.Options) (*syscallsObjects, func(), error) {
	if t.keep == nil {
		objs, err := load(pid, opts)
		if err != nil {
			return nil, nil, err
		}
		return objs, func() { objs.Close() }, nil
	}
	k := t.keep
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.busy {
		// Two traces at once: the second gets a set of its own.
		objs, err := load(pid, opts)
		if err != nil {
			return nil, nil, err
		}
		return objs, func() { objs.Close() }, nil
	}
	if k.objs != nil && k.key == keyOf(opts) {
		if err := reuse(k.objs, pid); err == nil {
			k.busy = true
			return k.objs, k.done, nil
		}
		// A table that cannot be emptied: load a fresh set.
	}
	if k.objs != nil {
		k.objs.Close()
		k.objs = nil
	}
	objs, err := load(pid, opts)
	if err != nil {
		return nil, nil, err
	}
	k.objs, k.key, k.busy = objs, keyOf(opts), true
	k.loads++
	return objs, k.done, nil
}

func (k *kept) done() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.busy = false
	if k.closing && k.objs != nil {
		k.objs.Close()
		k.objs, k.closing = nil, false
	}
}

// reuse makes a loaded set, detached, ready to trace pid: every table
// emptied of the last trace's counts, names and samples, and the target
// set.
func reuse(objs *syscallsObjects, pid int) error {
	for _, m := range []*ebpf.Map{objs.Stats, objs.Spill, objs.Comms, objs.StackCounts, objs.Stacks, objs.PyThreads, objs.PyChains} {
		if err := clearKeys(m); err != nil {
			return err
		}
	}
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return fmt.Errorf("counting CPUs: %w", err)
	}
	if err := objs.LastKey.Put(uint32(0), make([]syscallsLast, ncpu)); err != nil {
		return fmt.Errorf("emptying last_key: %w", err)
	}
	for i := range uint32(dropCounters) {
		if err := objs.Dropped.Put(i, make([]uint64, ncpu)); err != nil {
			return fmt.Errorf("emptying dropped: %w", err)
		}
	}
	if err := emptyInflight(objs.Inflight); err != nil {
		return err
	}
	if err := objs.TargetTgid.Set(uint32(pid)); err != nil {
		return fmt.Errorf("setting the target: %w", err)
	}
	return nil
}

// clearKeys deletes every key of a hash (or stack trace) map, which no
// program writes to while detached.
func clearKeys(m *ebpf.Map) error {
	var keys [][]byte
	var prev any // nil, not a nil []byte: the first key
	for {
		next, err := m.NextKeyBytes(prev)
		if err != nil {
			return fmt.Errorf("listing the keys of %v: %w", m, err)
		}
		if next == nil {
			break
		}
		if len(keys) > int(m.MaxEntries()) {
			return fmt.Errorf("listing the keys of %v: more than its %d entries", m, m.MaxEntries())
		}
		keys = append(keys, next)
		prev = next
	}
	for _, k := range keys {
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("emptying %v: %w", m, err)
		}
	}
	return nil
}

// inflightMappable makes the in-flight table of spec memory-mappable
// (BPF_F_MMAPABLE: Linux 5.5, which the tp_btf programs need anyway), so
// that a kept set empties it between traces by writing zeros to its
// memory, a few microseconds, where a batch update of its 32,768 slots
// took 7.5 to 16.6 ms (BenchmarkReuse), most of what reusing the set
// costs. A slot left as the last trace wrote it would time a call that
// entered then and returns in the next trace from that entry
// (TestKeptForgetsInflight).
func inflightMappable(spec *ebpf.CollectionSpec) {
	spec.Maps[syscallsMapInflight].Flags |= unix.BPF_F_MMAPABLE
}

// emptyInflight sets every slot of the in-flight table to 0, which no
// program writes to while detached: through its memory, or entry by
// entry where it could not be mapped.
func emptyInflight(m *ebpf.Map) error {
	mem, err := m.Memory()
	if err != nil {
		return zeroArray(m)
	}
	var zeros [4096]byte
	for off := int64(0); off < int64(mem.Size()); off += int64(len(zeros)) {
		n := min(int64(len(zeros)), int64(mem.Size())-off)
		if _, err := mem.WriteAt(zeros[:n], off); err != nil {
			return fmt.Errorf("emptying %v: %w", m, err)
		}
	}
	return nil
}

// zeroArray sets every entry of an array of u64 to 0, in one batch where
// the kernel has them (5.6).
func zeroArray(m *ebpf.Map) error {
	n := int(m.MaxEntries())
	keys, zeros := make([]uint32, n), make([]uint64, n)
	for i := range keys {
		keys[i] = uint32(i)
	}
	_, err := m.BatchUpdate(keys, zeros, nil)
	if errors.Is(err, ebpf.ErrNotSupported) {
		for i := range keys {
			if err = m.Put(keys[i], zeros[i]); err != nil {
				break
			}
		}
	}
	if err != nil {
		return fmt.Errorf("emptying %v: %w", m, err)
	}
	return nil
}
