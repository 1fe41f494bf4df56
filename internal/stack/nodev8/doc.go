// Package nodev8 names the JavaScript functions of a node process started
// with no flag, from V8's own description of its objects: the v8dbg_*
// constants the node binary carries (Debian's and NodeSource's nodejs
// both do: about 1,100 of them), as llnode and the OpenTelemetry profiler
// read them. It is a stack.Runtime and a stack.StackExpander, registered
// from init; its frames have Kind "v8", with the script's name and the
// function's line where they can be read: `hotLoop (hot.js:4)`.
//
// # How
//
// V8 keeps frame pointers in the code it generates, and every JavaScript
// frame (interpreted, baseline or optimized) holds, at fixed places from
// its frame pointer (off_fp_context_or_frame_type, off_fp_function), a
// context and the JSFunction it runs; a frame of another type holds a
// small integer, its type's marker, where the context would be. For each
// frame that runs V8's code (anonymous JIT code, the interpreter's entry
// and bytecode handlers, baseline builtins), the resolver's unwinding
// gives its frame pointer; the marker is checked, then the function:
// JSFunction -> SharedFunctionInfo -> its name (a string, or the
// function's ScopeInfo, where the name and the function's start position
// are found as the OpenTelemetry profiler finds them) and its Script (name,
// line ends; when V8 has not computed them, the lines are counted in the
// script's source). Every object is checked to be a tagged pointer to an
// object whose map says the expected instance type before a field is
// read; every length is capped (heap.go); the readers are fuzzed over
// random memory.
//
// # Limits
//
// Only the V8 releases in Known are read (node 20's 11.3, tested, and
// Debian 12's node 18, 10.2): the
// ScopeInfo is laid out by release without a constant to describe it,
// and the walk assumes 8-byte pointers (node builds V8 without pointer
// compression). Another release, or a binary without the constants, gets
// one note and its frames stay the interpreter's or [anon]+0xADDRESS: a
// name is never guessed. A frame in the few instructions of a function's
// prologue, before it sets its frame pointer, is named by its caller's
// function. A leaf in one of V8's builtins that keep no frame of their
// own hides the JavaScript function that called it (the frame-pointer
// walk goes from the builtin to that function's caller); the builtin is
// still named natively. Functions inlined by the optimizing compiler are
// named by the function they were inlined into. External and sliced
// strings (node's own built-in modules' sources) are not read: those
// functions have names but no line. The inspector protocol would name
// everything, but it is a debugger attached to the target without its
// consent, and is not used.
package nodev8
