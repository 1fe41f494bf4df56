// Package top is cpuwhy's process and thread view: the `top -H` step of an
// investigation, done from the host and aware of containers.
//
// A Sampler turns successive /proc snapshots into Frames: every process with
// its CPU% of one core (user and system), state, thread count, RSS, its
// container and its PID inside its own PID namespace, and, when threads are
// asked for, each thread with its name, CPU%, state and the system call it
// is blocked in. Frames render as text (WriteText) or JSON (WriteJSON); the
// live terminal view lives in package tui.
//
// Cost: one stat read per process per refresh, plus one per thread of each
// process that used CPU since the last refresh; what is constant for a
// process's life (command line, namespace PID, container) is read once.
// Where sleeping threads are blocked costs a read per thread the first
// time, so it is filled in only on request (Sampler.ResolveBlocked), for
// the rows a caller shows, and remembered while a thread sleeps on. With
// Options.Tasks (a BPF task iterator, package taskiter), a thread view
// takes every thread's stat and the system call each sleeping one is in
// from one read of the iterator instead, and on Linux 6.7 and later each
// process's own figures too (the walker adds them up in the kernel): a
// cold view of 10,000 threads no longer reads 20,000 files, nor a stat
// per process; /proc is still listed, for processes the iterator does not
// list (a protected PID 1 on some VMs), which are read from it whole.
// /proc stays the fallback wherever the iterator cannot load.
package top
