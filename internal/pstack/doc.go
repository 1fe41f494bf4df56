// Package pstack takes the current stack of every thread of a process,
// as pstack and eu-stack do, from the host and for processes in
// containers: each thread is stopped (PTRACE_SEIZE + PTRACE_INTERRUPT)
// only for as long as it takes to read its registers and copy its stack,
// then let go; the stacks are unwound and named afterwards, with the
// thread already running again.
//
// A signal that arrives while a thread is held is handed back to it on
// detach, never swallowed. A thread that ends while it is being read is
// left out. If cpuwhy dies while a thread is held, the kernel detaches it
// (cpuwhy never sets PTRACE_O_EXITKILL).
//
// A dump with nothing to show is an error, never an empty or unnamed
// listing: ErrSelf for cpuwhy's own process, ErrNoStacks when every thread
// refused to be stopped (with ErrTraced, and a TracedError naming the
// tracer, when another tracer such as strace or gdb holds them: a thread
// has one tracer at a time), and ErrExited when the process ended before
// its stacks were named, since naming needs its memory map and objects.
package pstack
