// Package proc reads process and thread accounting from a /proc tree and
// turns two readings into CPU usage.
//
// A Snapshot is one pass over /proc: every process's stat line and, when
// asked, every thread's. Usage compares two snapshots and gives CPU% of one
// core (as top does), split into user and system time. The tree's root is
// configurable (FS), so tests can point it at a fixture tree under testdata.
//
// Limits: accounting comes from the kernel's tick-based utime/stime
// (USER_HZ, 100 per second on every Linux architecture cpuwhy supports), so
// over a one-second window a thread's CPU% has a resolution of one point.
// Processes and threads that appear or vanish between two snapshots are
// measured from their start (new) or dropped (gone).
//
// Errors: a process that exits while it is being read is not an error in a
// scan; it is simply absent. Reading one named process that is gone yields an
// error matching ErrGone.
package proc
