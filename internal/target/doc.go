// Package target turns what a user names — a host PID, a container and
// optionally a PID inside it, a name pattern, or nothing — into the one
// process cpuwhy examines. Every command that examines a process selects it
// here, so they all accept the same arguments and fail the same way.
//
// A thread's ID given as a PID (or as --ns-pid) selects the process the
// thread belongs to: the kernel answers /proc/TID for any thread, so read
// as a process a thread would be examined under its own number, with a
// pidfd that cannot be opened. Target.Note says so in one line, and
// Selector.Notify hears it, so every command says it the same way.
//
// With nothing named, the target is the process that used the most CPU
// over a short window (Window, one second by default), cpuwhy itself
// excluded. A container's busiest process is chosen the same way, among the
// container's processes. The target then carries a Pick saying so, for the
// report to tell the user what was chosen and why. When even the busiest
// process of the host uses less than MinCPU, nothing is burning CPU, and
// Select returns an *IdleError naming it with its figure instead of
// handing a sleeping process to a diagnosis.
//
// Errors are meant to be shown to the user as they are, on one line: each
// says what is wrong and what to do. Callers can tell them apart with
// errors.Is against ErrNoProcess, ErrAmbiguous, ErrNoContainer,
// ErrKernelThread, ErrGone, ErrLeaderExited and ErrPrivilege; ErrNothingBusy
// is not a failure but an answer, which a command prints and exits 0.
package target
