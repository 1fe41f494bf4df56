// Package containertest runs a program inside a real container made by
// hand, without a container engine, so that cpuwhy's container code is
// tested against what the kernel really shows for a containerized
// process.
//
// The container has its own PID, mount, UTS and IPC namespaces (and,
// optionally, a network namespace with only loopback up, or the network
// namespace of another container, as docker run --network container:A).
// The program is
// PID 1 inside it and runs from a directory the host does not have (by
// default /opt/<name>/<name>, as /opt/vpnserver/vpnserver in seed 000),
// so /proc/PID/exe names a path that cannot be opened on the host. It
// sits in a cgroup /docker/<64-hex id> in every mounted cgroup hierarchy,
// as docker's cgroupfs driver places containers, and a docker-like
// config.v2.json in a private data root gives it a name and an image.
// Config.CPUs caps it as docker run --cpus does (the cgroups' CFS quota);
// Config.RootFiles, Dirs and Devices add what a packaged program expects
// at fixed paths: its configuration, its log directory, /dev/net/tun.
// InNetwork runs test code in the container's network namespace.
// NewSandbox makes less than a container for host programs (a Debian
// server and its load generator): a network namespace with only loopback
// and a PID namespace around all started in it, nothing else.
//
// How: Start re-executes the test binary with namespace clone flags; Main,
// called from TestMain, recognises the re-executed copy, waits until
// Start has moved it into the cgroups, pivots into the root directory and
// execs the program. Init failures come back to Start over a close-on-exec
// pipe, so Start either returns a running container or fails the test
// with the reason.
//
// Limits: it needs root (or the equivalent capabilities) and a writable
// cgroup filesystem; without them the test is skipped through privtest,
// or failed when CPUWHY_REQUIRE_PRIVILEGED=1. Only the program, the files
// given, the shared libraries ldd reports and docker's marks (/.dockerenv,
// /etc/hostname) are in the root: there is no shell, /dev holds only the
// devices asked for, and what a program loads at run time without ldd
// knowing (glibc's gconv modules, say) must be given as root files. The
// program runs as root with every capability (docker drops some). If the
// test binary is killed outright
// (SIGKILL), the program dies with it (parent-death signal) but its
// cgroup directories and temporary directory stay behind.
//
// The shared <mount>/docker parents are created and removed under a lock
// file in $TMPDIR/cpuwhy-containertest, which also records which parents
// containertest made: only those are removed, once empty, so concurrent
// test processes neither leak them nor pull them from under each other.
// The lock file itself stays. Tests that run a real dockerd with the
// cgroupfs driver, which uses the same parents, share them through
// ShareCgroupParents.
//
// This package makes raw mount, pivot_root and cgroup calls itself; it is
// test-only code, and the one place outside the syscall door that does.
package containertest
