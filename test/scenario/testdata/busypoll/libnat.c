// libnat.so: the shared library half of the busypoll scenario.
//
// SoftEther keeps its socket layer (Mayaqua) apart from the server
// binary; in the field report the hot frame is RecvFrom calling
// recvfrom@plt. RecvFrom lives here, in a shared library, so that a
// profiler must resolve it from libnat.so's dynamic symbols: the main
// binary is stripped and knows the name only as an import.

#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

// nat_recv_calls counts every recvfrom(2) that RecvFrom makes. It is read
// by the main binary's SIGUSR1 handler, so it is only ever touched with
// atomics (lock-free on x86-64, hence async-signal-safe).
static unsigned long nat_recv_calls;

unsigned long NatRecvCalls(void)
{
	return __atomic_load_n(&nat_recv_calls, __ATOMIC_RELAXED);
}

// RecvFrom reads one datagram from a non-blocking socket. Like SoftEther's
// RecvFrom it reports "nothing yet" (EAGAIN) as a distinct result instead
// of waiting, and leaves it to the caller to decide to wait - which
// NatThreadMain never does.
//
// Returns the datagram size, 0 when nothing is waiting, or -1 on error.
__attribute__((visibility("default"), noinline))
int RecvFrom(int fd, void *buf, size_t len)
{
	struct sockaddr_storage from;
	socklen_t fromlen = sizeof(from);
	ssize_t n;

	__atomic_fetch_add(&nat_recv_calls, 1, __ATOMIC_RELAXED);
	n = recvfrom(fd, buf, len, 0, (struct sockaddr *)&from, &fromlen);
	if (n < 0)
		return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
	return (int)n;
}
