// Package runtimes links every language runtime into the program: each
// runtime's package registers itself with stack.Register from its init,
// and the resolver tries what is registered, so a runtime that no package
// imports is never tried. The commands import this package, for its
// side effect only, to get them all.
package runtimes

import (
	// HotSpot JVMs: the JVM's own perf map, asked for through its
	// attach mechanism.
	_ "github.com/cpuwhy/cpuwhy/internal/stack/hotspot"
	// Perf maps: node --perf-basic-prof, python -X perf, perf-map-agent.
	_ "github.com/cpuwhy/cpuwhy/internal/stack/perfmap"
)
