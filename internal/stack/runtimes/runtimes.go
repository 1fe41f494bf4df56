// Package runtimes links every language runtime into the program: each
// runtime's package registers itself with stack.Register from its init,
// and the resolver tries what is registered, so a runtime that no package
// imports is never tried. The commands import this package, for its
// side effect only, to get them all.
//
// The resolver asks the runtimes in the order they registered, which is
// the order of their packages' import paths (Go initializes imported
// packages sorted by path): a frame one runtime named, the next ones
// leave alone. nodev8 comes before perfmap on purpose: a name read from
// the process's own objects is current and checked, where a perf map
// may be stale; the map still names what V8's objects did not.
package runtimes

import (
	// HotSpot JVMs: the JVM's own perf map, asked for through its
	// attach mechanism.
	_ "github.com/cpuwhy/cpuwhy/internal/stack/hotspot"
	// Node: V8's own metadata (v8dbg_*) and the frames it keeps.
	_ "github.com/cpuwhy/cpuwhy/internal/stack/nodev8"
	// Perf maps: node --perf-basic-prof, python -X perf, perf-map-agent.
	_ "github.com/cpuwhy/cpuwhy/internal/stack/perfmap"
	// CPython 3.8-3.13, read from the interpreter's memory.
	_ "github.com/cpuwhy/cpuwhy/internal/stack/python"
)
