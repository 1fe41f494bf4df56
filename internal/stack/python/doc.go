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
// # Reading the chain at the sample
//
// The chain of each sample is read in the kernel, as the sample is
// taken: a perf_event BPF program (package ebpf), attached to each of the
// sampler's events (stack.EventReader, sample.Options.Event), walks the
// sampled thread's frames from its thread state and sends the raw chain
// (each frame's address, code object, instruction field and owner bytes),
// stamped on CLOCK_MONOTONIC, into a ring buffer. The thread states come
// from user space, a map of thread ids to thread states filled at each
// reading of them. A sample is matched to its thread's chain stamped
// nearest it, within 200 us (2-4 us after it on Linux 6.18, which stamps
// the sample before it runs the program); what the chain means (shims,
// entries, instruction offsets, loops) is worked out here, as for a chain
// read from user space. Only the code objects are read later, for their
// names, and a code object does not change while it lives (the cache
// checks that it is still the same one). Measured on a thread alternating
// two functions every 25 ms (TestFreshFrames), 100% of the samples in
// one's C code had its Python frame, on 3.8 to 3.13 and Debian's 3.11,
// with five other jobs loading both cores. Nothing is read live, so the
// sampler is woken only when a ring is half full, as for any process:
// `cpuwhy record` of a Python loop at 99 Hz took 0.58% of a core while
// sampling (median of 5 rounds, 0.39-2.35%, the machine shared), against
// 3.09% (1.44-3.82%) reading live with a wakeup per sample, and perf's
// 0.04% (bench/recordcost, one run).
//
// A sample without a chain (a thread the program was not told of yet, its
// thread states read again when its first samples find none; a frame on a
// page out of memory, which the interrupt cannot fault in; a ring buffer
// full) has its chain read from the process when it is named, as has
// every sample where the program cannot be loaded (no CAP_BPF and
// CAP_PERFMON, a kernel before 5.8, CPUWHY_PYTHON_NO_BPF=1). The sampler
// is then woken at every sample (Options.Prompt), and the chain is that
// of about a millisecond later: a thread whose Python stack changed in
// between shows the Python frames of that later moment; fewer Python
// frames than eval frames keep the outer eval frames native. On the same
// thread, 94-100% of the samples in C code had the right Python frame
// that way (80% once in CI), 40-80% when woken at half-full rings.
// `dump` and `syscalls --stacks` read the chain live too: `dump` once it
// has let the thread go again, just after copying its stack. A sample of
// a single address (the leaf that is named after the recording) is not
// expanded.
//
// # Syscall stacks
//
// `syscalls --stacks` takes each sampled call's stack by frame pointers,
// which the interpreter's C code does not keep: the walk stops inside it.
// The syscall tracer's program links in the kernel's walk (package
// ebpf's pywalk.h) and reads the thread's chain with each stack, from
// the thread states this package gives it (stack.ChainWalker:
// WalkLayout, WalkThreads). The chain comes back with the stack
// (KernelChain) and is merged into it by the same code as a sample's,
// its Python frames outermost where the native walk stopped short, and
// the frames a lost frame-pointer walk found in no object dropped.
//
// # The GIL
//
// The GIL's last_holder and locked (in _PyRuntime.ceval.gil on 3.8-3.11,
// where the main interpreter's ceval.gil points on 3.12+) are read with
// each sample's chain, by the kernel's walk or live, and counted by the
// thread the holder's thread state is matched to (stack.LockSampler):
// gil_contention names the thread that held it most. Samples are of
// threads on a CPU, and a thread that keeps the GIL while off a CPU (a C
// call that does not release it) is on a CPU at none: the diagnosis also
// has it read on a timer (WatchLock, every 10 ms), whose readings are
// counted in place of the samples'. A locked field other than 0, 1 or
// -1 is no GIL, and is counted as a failed reading.
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
