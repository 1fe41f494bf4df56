// Package python names the Python functions a CPython 3.8 to 3.13
// process runs, in place of the interpreter's own frames, by reading the
// interpreter's state from the process's memory while each sample is
// fresh: no restart, no flag, no code injected, no stop.
//
// # Finding the interpreter
//
// Attach looks, among the objects the process maps whose name says
// python, for the one that defines _PyRuntime: the python binary or its
// libpython, opened through the process's root. Its dynamic symbols,
// which even a stripped interpreter keeps (Debian's python3.11), give
// _PyRuntime, PyCode_Type, PyUnicode_Type and PyBytes_Type, and on 3.11+
// Py_Version, the version; before that, the object's name
// (python3.9, libpython3.9.so) says it. Each minor version has its
// Layout, the offsets of what is read, taken from its own headers
// (testdata/offsets.c; the test compiles it against each version's
// headers and compares). Attach checks the layout against the live
// interpreter (PyCode_Type is named "code"; on 3.13 _PyRuntime begins
// with _Py_DebugOffsets of that version, whose offsets must be the
// layout's); a version out of the table, or
// a check that fails, is one note, and the frames stay native.
//
// # Threads
//
// A sample's thread is matched to its thread state by native_thread_id
// (3.11+), or on 3.8-3.10 by the kernel's thread id held in the struct
// pthread that thread_id (pthread_self()) points to, at glibc's offset or
// at the one found to hold a thread id of the process for every thread
// state. Ids are translated from the process's PID namespace to the
// host's. The thread states are read again, at most every 100ms, when a
// sample comes from a thread none is known for.
//
// # Matching Python frames to the native stack
//
// The native walk of a sample holds one frame of the eval loop
// (_PyEval_EvalFrameDefault) per call of it; the thread's Python frame
// chain, read at the sample, holds the frames those calls run, innermost
// first. On 3.8-3.10 each call runs one frame; on 3.11 a call runs frames
// up to one marked is_entry; on 3.12+ up to a shim frame the call pushed,
// owned by the C stack. The n-th eval frame from the innermost is
// replaced by the n-th such group of Python frames, as py-spy does. The
// interpreter's call machinery between them (vectorcall, call_function
// and the like, in the interpreter's own object) is dropped; C functions
// that do work (sock_recvfrom, list_sort) and the C library stay, so a
// stack reads recvfrom <- sock_recvfrom <- drain (x.py:9) <-
// Thread.run (threading.py:975).
//
// The chain is read when the sample is unwound, which for a process
// with a Python instance (stack.LiveReader) follows the sample by about a
// millisecond: package sample is then woken by the kernel at every
// sample (Options.Prompt) instead of when a ring is half full, every
// ~150 ms at 99 Hz. A thread whose Python stack changed in between shows
// the Python frames of that later moment: the same function at another
// line in a loop, or, for a stack that changes faster, other innermost
// frames; fewer Python frames than eval frames keep the outer eval
// frames native. Measured on a thread alternating two functions every
// 25 ms (TestFreshFrames, the suite running beside), 94-100% of the
// samples in one's C code had its Python frame, against 40-80% with
// half-full drains (every 10 ms: 66-99% against 18-66%), though 80% once
// in CI's own run, whose load delays the reads more: reading the chain
// at the sample itself (in the kernel, as the OpenTelemetry profiler
// does) is what would make it exact. `dump` names a thread's frames once
// it has let the thread go again, just after copying its stack: the same
// holds, over a shorter time. A sample of a single address (the leaf
// that is named after the recording) is not expanded.
//
// # Limits and checks
//
// The process's memory is hostile input: every object read is checked
// against its type (code objects against PyCode_Type, names against
// PyUnicode_Type), every length and loop is capped (128 Python frames,
// then a frame named [Python stack truncated]; 4096 thread states;
// 1024-character names; 64 KiB line tables), frame chains that loop are
// refused. The names of code objects are cached (4096, least recently
// used first out), keyed by their address and the fields that identify
// them, read again at each use. Only the main interpreter's threads are
// read, not subinterpreters'.
package python
