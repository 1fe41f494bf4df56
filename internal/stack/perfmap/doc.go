// Package perfmap names the code a process generates at run time from the
// perf map it writes, /tmp/perf-PID.map: one line per symbol, "START SIZE
// NAME" (hex address and size, the name the rest of the line), the
// convention perf reads and that node (--perf-basic-prof), CPython 3.12+
// (-X perf) and Java (perf-map-agent, -XX:+DumpPerfMapAtExit) follow.
// It is a stack.Runtime, registered from init; its frames have Kind
// "perfmap".
//
// The map is read through the process's root (/proc/PID/root, with
// openat2 RESOLVE_IN_ROOT, as every file of a target is), under the PID
// the process has in its own namespace: a process in a container writes
// /tmp/perf-1.map in the container's /tmp. It only names frames that
// nothing else named: anonymous code, code mapped since the resolver read
// the mappings, and code in objects without symbols.
//
// A JIT appends to its map as it compiles. The map is read again when the
// process maps new code (Sync) and when an address in anonymous code is
// not in it, at most every rereadInterval, and only the part not read yet
// (a map replaced or truncated since is read from its start). Where
// symbols overlap, the one written last wins, as in perf.
//
// # CPython's trampolines
//
// Under -X perf, CPython runs each Python function through a trampoline
// of its own in anonymous memory, which keeps no frame pointer: unwound
// by the frame-pointer fallback, a stack would end at the innermost
// Python function. The instance is a stack.CodeUnwinder: for a symbol of
// a trampoline's size whose code, read from the process, is the
// trampoline's (x86-64, with or without endbr64), it gives call frame
// information made for that code, so the stack goes on through every
// Python caller to the thread's start. Other code in the map (JIT code,
// which keeps frame pointers) is left to the fallback.
//
// # Limits
//
// The map is the target's, so hostile: Table reads at most
// Limits.MaxBytes of it over its life (64 MiB), keeps at most
// MaxEntries symbols (about a million) and MaxName bytes of a name; lines
// that are not a symbol are skipped and counted. What was skipped or cut
// becomes one note (Instance.Notes), and so does a process whose
// anonymous code was sampled but that writes no map, or one that cannot
// be read (no openat2, not a regular file, no permission). A map is read
// from its start: past the limits, the names of code compiled last are
// the ones missing. A map left in the process's /tmp by an earlier process
// with the same PID names its code until the new one writes over it.
// Names are kept as written: the runtime's own notation ("JS:*f
// file.js:2:17", "py::f:/app/x.py"); they are not split into function,
// file and line.
package perfmap
