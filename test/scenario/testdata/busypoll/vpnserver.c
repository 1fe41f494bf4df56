// vpnserver: the field report's bug in a few lines (seed 000).
//
// A SoftEther VPN server in Docker burns a whole core in its thread
// NatThreadMain, which polls a non-blocking UDP socket through
// RecvFrom -> recvfrom(2) without ever waiting for it to become readable.
// This program reproduces that shape and nothing else:
//
//   - the thread is named NatThreadMain (pthread_setname_np), so
//     per-thread tools see the same name as in the report;
//   - RecvFrom lives in libnat.so, found through rpath $ORIGIN, so the
//     binary and its library must sit side by side (in a container, in
//     /opt/vpnserver);
//   - this binary is stripped and built with -O2 -fomit-frame-pointer,
//     like a release build: no .symtab and no frame-pointer chain;
//   - the main thread only waits in pthread_join, so all CPU is the
//     poller's.
//
// Usage: vpnserver [PORT [RATE]]
//   PORT  UDP port on 127.0.0.1 (default 0: an ephemeral port).
//   RATE  recvfrom calls per second (scenario.h); 0 or absent: as fast as
//         possible, the bug. Paced, the same loop is a poller that sleeps
//         between batches: wasteful in latency, not in CPU.
//
// It prints "ready" on stdout once the socket is bound and the thread
// runs.
//
// Counting recvfrom calls: a test that checks syscall counts needs the
// ground truth. libnat.so counts each recvfrom(2) it makes. When the
// process gets SIGUSR1 it writes "calls=N\n" to the file named by the
// environment variable SCENARIO_COUNT_FILE (a path as the process sees
// it, so inside a container it is a path in the container). The file is
// written under a temporary name and renamed into place, so a reader
// never sees a partial line. Without SCENARIO_COUNT_FILE, SIGUSR1 is
// ignored.

#include "scenario.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

// From libnat.so.
int RecvFrom(int fd, void *buf, size_t len);
unsigned long NatRecvCalls(void);

static int nat_fd;
static long rate;

// Posted by the poller after its first RecvFrom: "ready" must mean the
// thread runs its loop, not merely that it was created. Under load a new
// thread may not be scheduled for a while, and a stack taken then shows
// only __clone3.
static sem_t nat_running;

// The handler may only use async-signal-safe calls, so both paths are
// built before the handler is installed and the number is formatted by
// hand.
static char count_path[4096];
static char count_tmp[4096 + 8];

static void write_count(int sig)
{
	char buf[32];
	char digits[24];
	unsigned long n = NatRecvCalls();
	int nd = 0, len = 0, fd;

	(void)sig;
	do {
		digits[nd++] = (char)('0' + n % 10);
		n /= 10;
	} while (n > 0);
	memcpy(buf, "calls=", 6);
	len = 6;
	while (nd > 0)
		buf[len++] = digits[--nd];
	buf[len++] = '\n';

	fd = open(count_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	if (write(fd, buf, (size_t)len) == len) {
		close(fd);
		rename(count_tmp, count_path);
		return;
	}
	close(fd);
	unlink(count_tmp);
}

static void *nat_thread_main(void *arg)
{
	char buf[2048];
	struct pace pace;

	(void)arg;
	pace_init(&pace, rate);
	// The bug: spin on a socket that is never readable instead of
	// waiting in poll/select.
	RecvFrom(nat_fd, buf, sizeof(buf));
	sem_post(&nat_running);
	for (;;) {
		RecvFrom(nat_fd, buf, sizeof(buf));
		pace_done(&pace);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct sockaddr_in addr;
	const char *file = getenv("SCENARIO_COUNT_FILE");
	pthread_t nat;

	rate = arg_rate(argc, argv, 2);
	if (file != NULL && *file != '\0' && strlen(file) < sizeof(count_path)) {
		struct sigaction sa;

		strcpy(count_path, file);
		strcpy(count_tmp, file);
		strcat(count_tmp, ".tmp");
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = write_count;
		sa.sa_flags = SA_RESTART;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGUSR1, &sa, NULL);
	} else {
		signal(SIGUSR1, SIG_IGN);
	}

	nat_fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (nat_fd < 0) {
		perror("socket");
		return 1;
	}
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_port = htons((unsigned short)(argc > 1 ? atoi(argv[1]) : 0));
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(nat_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		perror("bind");
		return 1;
	}

	sem_init(&nat_running, 0, 0);
	if (pthread_create(&nat, NULL, nat_thread_main, NULL) != 0) {
		fprintf(stderr, "pthread_create failed\n");
		return 1;
	}
	pthread_setname_np(nat, "NatThreadMain");
	while (sem_wait(&nat_running) != 0)
		; // EINTR: a SIGUSR1 for the count

	printf("ready\n");
	fflush(stdout);
	pthread_join(nat, NULL);
	return 0;
}
