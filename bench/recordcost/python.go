package main

import _ "embed"

// pyloop is the Python target (bench/internal/pytarget): its Python
// frames are what record reads from the interpreter's memory at every
// sample.
//
//go:embed pyloop.py
var pyloop []byte
