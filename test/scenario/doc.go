// Package scenario builds small C, C++ and Go programs that reproduce the CPU
// problems cpuwhy diagnoses, for tests and for reproducing issues.
//
// Each scenario is a readable source under testdata/, embedded in the
// package and compiled with gcc, g++ or go the first time a test asks for
// it. The
// comments in each source say why it is shaped as it is.
//
//   - busypoll: the field report's SoftEther bug (busy_poll). A stripped
//     binary vpnserver whose thread NatThreadMain spins on a non-blocking
//     UDP socket through RecvFrom in libnat.so: recvfrom failing with
//     EAGAIN. Arguments [PORT [RATE]]. SIGUSR1 writes the number of
//     recvfrom calls made so far to $SCENARIO_COUNT_FILE.
//   - churn: a thread named Supervisor forks and execs a child (itself,
//     as "churn --child", which exits at once) and waits for it, in a
//     loop (process_churn). The CPU is the children's: it reaches the
//     parent's cutime/cstime; the parent shows clone and wait4.
//   - compute: [THREADS]; a thread named cruncher in a syscall-free loop
//     in crunch_numbers, or THREADS of them named cruncher-0, -1, ...
//   - cxxhot: C++ built with g++ -O2 -g; a thread named pump spins in
//     the method vpn::Session::pump, for demangling.
//   - echoserver: a healthy busy server, which no bug verdict may hit: a
//     thread named Server answers UDP requests on 127.0.0.1, blocking in
//     recvfrom and hashing each payload (hash_request, about 15 µs), and a
//     thread named Client sends them at RATE a second (default 20000;
//     about 40% of a core for the Server).
//   - execphase: [DELAY_MS [thread]]; burns CPU in phase_one_burn for
//     DELAY_MS (default 1000), then execs phasetwo (beside it), which
//     burns CPU in phase_two_burn: an exec in the middle of a window. With
//     "thread", a thread named burner burns and runs the exec.
//   - exitontrace: [N]; N threads (default 200) sleeping in pause(2),
//     and a main thread in epoll_wait that ends the process when a
//     tracer's stop interrupts it (EINTR): a process that dies during a
//     dump, after its first thread was read.
//   - gcpressure: Go, built with symbols (not stripped). Goroutines locked
//     to threads named Allocator, one per P, allocate 4 KiB buffers and
//     drop them, beside a live heap of 1,000,000 linked nodes (32 MiB,
//     more than a cache holds): over half of
//     the CPU goes to the garbage collector by the runtime's own account.
//     SIGUSR1 writes that account (runtime/metrics) to
//     $SCENARIO_COUNT_FILE.
//   - gostripped: Go built with -ldflags="-s -w" (no .symtab, no DWARF,
//     the pclntab remains); main.spin burns CPU on a locked thread.
//   - hostile: [idle]; a process whose every name attacks the terminal
//     that shows it (issue 18): it re-executes itself with an argv of
//     escape sequences, newlines and invalid UTF-8, names itself and its
//     threads the same way, and its thread "\x1b[2Jhot\nfake" burns about
//     a third of a core in a function whose symbol is HostileSymbol,
//     writing to a memfd and sending to an abstract unix socket with
//     hostile names between bursts. With idle it burns nothing.
//   - idle: a thread named acceptor blocked in accept(2); about 0% CPU.
//   - jitmap: [nomap]; a hand-made JIT (x86-64 only): a thread named
//     jitter spins in machine code it copied to anonymous memory and
//     named in /tmp/perf-PID.map (PID as its namespace sees it) as
//     jit_first, over an earlier, larger jit_decoy. On SIGUSR1 it copies
//     the code again, appends jit_second to the map, prints "switched"
//     and spins there. With nomap it writes no map. The map outlives the
//     process, as a JIT's does: a test that runs it on the host removes
//     it.
//   - kernelbound: a thread named Copier reads a chunk of /dev/zero with
//     one read(2), in a loop: on a CPU all the time, all of it in the
//     kernel, at only hundreds of calls a second. The chunk is sized at
//     start so that a read costs 0.5-1 ms of CPU on any machine.
//   - lockstorm: [RATE [THREADS]]; THREADS (default 4) threads named
//     Worker, pinned round robin to the allowed CPUs, take one pthread
//     mutex around a tiny critical section (update_shared_stats): a storm
//     of futex wait and wake (lock_contention).
//   - refused: a thread named UdpClient sends and receives on a UDP
//     socket connected to a closed port on 127.0.0.1, in a loop: every
//     receive fails with ECONNREFUSED (error_loop). SIGUSR1 writes its own
//     counts of each outcome to $SCENARIO_COUNT_FILE.
//   - spawner: [LIFETIME_MS [BURN_MS [COUNT]]]; starts a thread named
//     spawned every 100 ms that uses BURN_MS of CPU (default 0) in burn,
//     makes exactly 10 getppid(2) calls and exits; with LIFETIME_MS > 0 it
//     exits itself after that long; with COUNT > 0 it waits for SIGUSR1,
//     then starts COUNT such threads one after the other, each once the
//     one before ended, and exits.
//   - spinyield: [RATE [yield|spin]]; a thread named Spinner waits for a
//     flag that a thread named Producer sets every 100 ms, calling
//     sched_yield between checks (yield_wait_for_work) or spinning on the
//     pause instruction (spin_wait_for_work, no syscall at all).
//   - tracer: PID; another tracer (as strace -p): PTRACE_SEIZE on every
//     thread of PID, held until killed, signals passed on.
//   - threads: N threads (argv[1], default 1000), all sleeping but the
//     first BUSY (argv[2], default 0), which each use about a tenth of a
//     core in short bursts.
//   - timerstorm: [RATE [sleep|timerfd]]; a thread named Ticker sleeps
//     1 µs at a time with nanosleep (timer slack set to 1 ns), or reads a
//     timerfd that expires every 10 µs.
//   - udpflood: [RATE [SECONDS]]; moves itself into a network namespace
//     of its own (unshare, as root), brings its loopback up, and a thread
//     named Flooder sends 64-byte datagrams to a socket a thread named
//     Sink drains: the NET_RX softirqs take the sender's CPU. It exits
//     after SECONDS (default 30).
//   - writestorm: [RATE [DIR]]; a thread named Logger writes each short
//     log line with its own write(2) to DIR/writestorm.log (default: an
//     unlinked temporary file in $TMPDIR), truncated every 4 MiB.
//   - zeropoll: [RATE [poll|epoll|select]]; a thread named Poller waits
//     with a zero timeout for a UDP socket on 127.0.0.1 that nobody sends
//     to: every call succeeds with no event (zero_timeout_poll).
//
// Every program prints the line "ready" on stdout once it is set up, and
// runs until killed (SIGKILL is what tests send; nothing is left behind
// but what a caller asked for, such as writestorm's DIR/writestorm.log).
//
// Pathology and its healthy twin: the scenarios reproducing a CPU
// pathology take RATE, operations per second, as the argument shown (for
// busypoll the second; for refused, churn, kernelbound and gcpressure the
// only one). 0 or absent runs flat out, the pathology; a rate paces the
// same loop, the healthy program on the other side of the threshold a
// diagnosis draws. echoserver's RATE (default 20000, 0 flat out) only
// makes a healthy server busier.
// Pacing (testdata/include/scenario.h) sleeps to absolute deadlines at
// least 10 ms apart, so it never adds more than 100 sleeps a second. The C
// pattern scenarios are built with -O2 -g -fno-omit-frame-pointer and keep
// their symbols, and their hot threads name themselves with
// prctl(PR_SET_NAME) before "ready". patterns_test.go checks each of them
// and its twin for real: the hot thread's CPU, and its syscalls and
// results counted by the eBPF tracer.
//
// Builds are cached by content (sources, build commands and the version
// of each tool they run)
// under the user's cache directory, so a test binary builds each scenario
// at most once and parallel tests and packages share the result; a
// finished build is renamed into place, so a reader never sees half of
// one. A failed build fails the test with the compiler's output (Build) or returns
// it (Compile, for programs that are not tests).
package scenario
