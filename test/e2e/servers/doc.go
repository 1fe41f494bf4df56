// Package servers tests cpuwhy's diagnosis end to end against real
// servers from Debian under load: redis-server driven by redis-benchmark,
// nginx driven by wrk, postgres driven by pgbench -S. A server doing its job, however busy, must come out
// healthy, or at worst compute_loop in one of its own functions; a bug
// verdict (busy_poll, error_loop, kernel_bound...) on it is a false alarm
// that would send a user hunting for a bug that is not there. Their twins,
// real programs caught in a pattern (socat retrying a closed port without
// a backoff, stress-ng's futex wakers, stress-ng's socket sender), must
// get it.
//
// The package holds only tests. They need root (namespaces, BPF, perf
// events) and the Debian packages redis-server, redis-tools, nginx-light
// (or nginx), wrk, postgresql, socat and stress-ng; without the packages they are skipped through
// privtest (a failure when CPUWHY_REQUIRE_PRIVILEGED=1).
//
// Nothing reaches the host's network: each server and its client run in a
// network namespace of their own with only loopback up
// (containertest.NewSandbox: the test binary re-executed as PID 1 of new
// network and PID namespaces). The servers run from the packages'
// binaries with private configuration in a temporary directory, listen on
// 127.0.0.1 inside that namespace, keep nothing on disk (postgres its cluster, made by initdb in that directory) and are never
// started as system services. Killing the namespace's PID 1 kills everything in it, which is
// how each test cleans up, and what happens if the test binary dies.
package servers
