package verdict

import "fmt"

// thread_churn: a process starting a thread for each piece of work (a
// request, a connection) and ending it after, so that threads are started
// and ended all the time: the start and end of each (clone, its stack's
// mmap and munmap, the runtime's per-thread state) and the handing over
// of work to a new thread are much of the CPU. It is judged on the
// process: the threads that did the work are gone by the end of the
// window, and their CPU is known only as the process's less its live
// threads' (the row of exited threads, Thread.Exited).
//
// Thresholds: threads ended during the window at ThreadChurnRate or more,
// using HotThreadCPU or more between them (rules.go).

// ThreadChurnRate is the rate of threads that ended during the window
// (distinct TIDs seen that were gone at its end) above which ending and
// starting threads is the process's way of working rather than a pool
// resizing: a pool replaces a worker a few times a second at most, while
// a thread per request ends one per request, hundreds a second under
// load (Python's http.server under wrk: about 200/s). Below 50 a second
// a thread's start and end, some tens of microseconds in the kernel and a
// few hundred in an interpreter, cost a few percent of a core at most.
const ThreadChurnRate = 50.0

func threadChurn(o *Observation) (*Verdict, []int) {
	var exited *Thread
	var clones uint64
	var spawner *Thread
	var spawnerN uint64
	for i := range o.Threads {
		t := &o.Threads[i]
		if t.Exited > 0 {
			exited = t
		}
		var n uint64
		for _, s := range t.Syscalls {
			if s.Name == "clone" || s.Name == "clone3" {
				n += s.OK - s.Zero // the child's return is 0, and not a start
			}
		}
		clones += n
		if t.Exited == 0 && n > spawnerN {
			spawner, spawnerN = t, n
		}
	}
	if exited == nil {
		return nil, nil
	}
	r := float64(exited.Exited) / o.Seconds
	if r < ThreadChurnRate || exited.CPU.Total < HotThreadCPU {
		return nil, nil
	}
	v := newVerdict(ThreadChurn, exited)
	covered := []int{exited.TID}
	if spawner != nil {
		v = newVerdict(ThreadChurn, spawner)
		covered = append(covered, spawner.TID)
	}
	v.CPU, v.CPUOf = round1(exited.CPU.Total), CPUOfExited
	v.Syscall = str("clone")
	if calls(o, "clone3") > calls(o, "clone") {
		v.Syscall = str("clone3")
	}
	v.Summary = fmt.Sprintf("process %s starts a thread for each piece of work and ends it after: threads started and ended at %s, %d alive at the end of the window; the threads that ended used %.1f%% of a core",
		o.Name, rate(r), o.ThreadsAlive, exited.CPU.Total)
	ended := fmt.Sprintf("%d", exited.Exited)
	if sampledCounts(o) {
		// Threads that lived and ended between the slices made no
		// call counted: the TIDs seen are a lower bound.
		ended = "at least " + ended
	}
	v.Evidence = []string{
		fmt.Sprintf("%s threads ended during the %.1f s window (%s), %d alive at its end; %s clone/clone3 calls started threads",
			ended, o.Seconds, rate(r), o.ThreadsAlive, rate(float64(clones)/o.Seconds)),
		fmt.Sprintf("the threads that ended used %.1f%% of a core (%.1f%% user, %.1f%% system), of the process's %.1f%%: the row of exited threads",
			exited.CPU.Total, exited.CPU.User, exited.CPU.System, o.CPU.Total),
	}
	if spawner != nil {
		v.Evidence = append(v.Evidence, fmt.Sprintf("thread %s (TID %d) started them", spawner.Name, spawner.TID))
	}
	v.Evidence = append(v.Evidence, stackLine(exited)...)
	v.Advice = "hand the work to a pool of long-lived threads (a thread pool, an event loop) instead of a thread per request; " +
		"for a server that works this way by design (Python's ThreadingHTTPServer, a thread-per-connection server), keep connections alive " +
		"so that a thread serves many requests, or run it behind a server with workers"
	return v, covered
}

// calls counts the calls of the named syscall by every thread, the
// exited ones included.
func calls(o *Observation, name string) uint64 {
	var n uint64
	for i := range o.Threads {
		if s := o.Threads[i].syscall(name); s != nil {
			n += s.Count
		}
	}
	return n
}
