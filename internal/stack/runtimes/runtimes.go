// Package runtimes links every language runtime into the program: each
// runtime's package registers itself with stack.Register from its init,
// and the resolver tries what is registered, so a runtime that no package
// imports is never tried. The commands import this package, for its
// side effect only, to get them all.
package runtimes

import (
	// Perf maps: node --perf-basic-prof, python -X perf, perf-map-agent.
	_ "github.com/cpuwhy/cpuwhy/internal/stack/perfmap"
	// CPython 3.8-3.13, read from the interpreter's memory.
	_ "github.com/cpuwhy/cpuwhy/internal/stack/python"
)
