// Package watch is the trigger of `cpuwhy watch` and `cpuwhy agent`: it
// scans /proc at a low rate and says when a process has stayed at or above
// a CPU threshold for a while, so that a spike that comes and goes on a
// box nobody watches is diagnosed while it lasts.
//
// One scan every Options.Interval (1 s by default) reads each process's
// CPU, not its threads': from one run of a BPF program when Options.Procs
// is set (taskiter.Procs: on a host of 1,000 processes and 10,000
// threads, 0.5 ms of CPU where /proc takes 21), else from each process's
// stat line in /proc (the fallback, and what a listing that fails is
// replaced with). A process's CPU is the sum of its threads', so a thread at or above the threshold puts its process there too, and
// only a process over the threshold has its threads read, to name the
// hottest one. Processes started after the watch began are in the next
// scan; their CPU is measured from their start. Before each scan, the
// first line of /proc/stat says how much CPU the whole host used since
// the last: when that is under the threshold no process can be over it,
// and the scan is skipped (on a host of 10,000 threads, listing /proc
// alone walks them all; the BPF walk visits them too, at a fraction of
// the cost); the first scan after a skipped one is a
// baseline, so a spike on a quiet host is seen one interval later.
//
// A process that stays at or above Options.CPU for Options.For is a
// Trigger. Triggers go to one worker through a queue of Options.Queue: one
// diagnosis runs at a time, a trigger that finds the queue full is
// dropped (and may trigger again once its process has stayed hot for
// another Options.For), and a process triggered less than Options.Cooldown
// ago is skipped. What the worker does with a trigger, and what happens to
// the skipped ones, is the Handler's business: watch knows nothing of the
// diagnosis or of where reports go.
//
// Memory is bounded by the processes alive: the state of a process that
// is gone is forgotten at the next scan, its cooldown with it (a new
// process under the same PID has another start time).
//
// Errors: Run returns an error only when /proc cannot be listed at the
// start; a scan failing later is handed to Handler.ScanFailed and the
// watch goes on.
package watch
