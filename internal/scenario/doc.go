// Package scenario builds small C, C++ and Go programs that reproduce the CPU
// problems cpuwhy diagnoses, for tests and for reproducing issues.
//
// Each scenario is a readable source under testdata/, embedded in the
// package and compiled with gcc, g++ or go the first time a test asks for
// it. The
// comments in each source say why it is shaped as it is.
//
//   - busypoll: the field report's SoftEther bug. A stripped binary
//     vpnserver whose thread NatThreadMain spins on a non-blocking UDP
//     socket through RecvFrom in libnat.so. SIGUSR1 writes the number of
//     recvfrom calls made so far to $SCENARIO_COUNT_FILE.
//   - compute: a thread named cruncher in a syscall-free loop in
//     crunch_numbers.
//   - cxxhot: C++ built with g++ -O2 -g; a thread named pump spins in
//     the method vpn::Session::pump, for demangling.
//   - gostripped: Go built with -ldflags="-s -w" (no .symtab, no DWARF,
//     the pclntab remains); main.spin burns CPU on a locked thread.
//   - idle: a thread named acceptor blocked in accept(2); about 0% CPU.
//   - refused: a thread named UdpClient sends and receives on a UDP
//     socket connected to a closed port on 127.0.0.1, in a loop: every
//     receive fails with ECONNREFUSED. SIGUSR1 writes its own counts of
//     each outcome to $SCENARIO_COUNT_FILE.
//   - spawner: starts a thread named spawned every 100 ms that makes
//     exactly 10 getppid(2) calls and exits; with argv[1] = LIFETIME_MS it
//     exits itself after that long.
//   - threads: N threads (argv[1], default 1000), all sleeping but the
//     first BUSY (argv[2], default 0), which each use about a tenth of a
//     core in short bursts.
//
// Every program prints the line "ready" on stdout once it is set up.
//
// Builds are cached by content (sources, build commands and the version
// of each tool they run)
// under the user's cache directory, so a test binary builds each scenario
// at most once and parallel tests and packages share the result; a
// finished build is renamed into place, so a reader never sees half of
// one. A failed build fails the test with the compiler's output (Build) or returns
// it (Compile, for programs that are not tests).
package scenario
