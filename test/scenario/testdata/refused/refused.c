// refused: the error loop of a UDP client whose server is gone.
//
// A thread named UdpClient holds a UDP socket connected to a port on
// 127.0.0.1 where nothing listens, and sends and receives on it in a loop
// without waiting. Each datagram sent draws an ICMP port unreachable from
// the kernel, which the next call on the socket reports as ECONNREFUSED:
// the "same syscall failing with the same errno in a loop" pattern. The
// socket is non-blocking, so a receive with no error pending returns
// EAGAIN instead of sleeping.
//
// Counting: on SIGUSR1 the program writes its own counts of each outcome to
// the file named by SCENARIO_COUNT_FILE, as one line
//   send=N send_refused=N send_other=N recv_refused=N recv_again=N recv_other=N
// (send counts successful sends), so tests can check a profile's errno
// split against the truth.
//
// Usage: refused [RATE]
//   RATE  send-and-receive rounds per second (scenario.h); 0 or absent: as
//         fast as possible, the bug. Paced, the same failing calls are a
//         client retrying now and then: an error worth a note, not a CPU
//         problem.
//
// Prints "ready" once the loop runs.

#include "scenario.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile unsigned long n_send, n_send_refused, n_send_other, n_recv_refused, n_recv_again, n_recv_other;
static const char *count_file;
static int fd;
static long rate;

static size_t put(char *p, const char *key, unsigned long v)
{
	char digits[24];
	int n = 0;
	size_t len = strlen(key);

	memcpy(p, key, len);
	do {
		digits[n++] = '0' + v % 10;
		v /= 10;
	} while (v);
	for (int i = 0; i < n; i++)
		p[len + i] = digits[n - 1 - i];
	return len + n;
}

// Async-signal-safe: formats by hand and writes with write(2).
static void on_usr1(int sig)
{
	char line[256], tmp[4096];
	size_t n = 0;
	int out;

	(void)sig;
	n += put(line + n, "send=", n_send);
	n += put(line + n, " send_refused=", n_send_refused);
	n += put(line + n, " send_other=", n_send_other);
	n += put(line + n, " recv_refused=", n_recv_refused);
	n += put(line + n, " recv_again=", n_recv_again);
	n += put(line + n, " recv_other=", n_recv_other);
	line[n++] = '\n';
	if (strlen(count_file) + 5 > sizeof(tmp))
		return;
	strcpy(tmp, count_file);
	strcat(tmp, ".tmp");
	out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0)
		return;
	if (write(out, line, n) == (ssize_t)n)
		rename(tmp, count_file);
	close(out);
}

static void *client(void *arg)
{
	char buf[64];
	struct pace pace;

	(void)arg;
	pace_init(&pace, rate);
	for (;;) {
		if (send(fd, "x", 1, 0) >= 0)
			n_send++;
		else if (errno == ECONNREFUSED)
			n_send_refused++;
		else
			n_send_other++;
		if (recv(fd, buf, sizeof(buf), 0) < 0) {
			if (errno == ECONNREFUSED)
				n_recv_refused++;
			else if (errno == EAGAIN)
				n_recv_again++;
			else
				n_recv_other++;
		}
		pace_done(&pace);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct sockaddr_in addr = {.sin_family = AF_INET};
	socklen_t len = sizeof(addr);
	pthread_t t;
	int probe;

	rate = arg_rate(argc, argv, 1);
	count_file = getenv("SCENARIO_COUNT_FILE");
	if (count_file) {
		struct sigaction sa = {.sa_handler = on_usr1, .sa_flags = SA_RESTART};
		sigaction(SIGUSR1, &sa, NULL);
	} else {
		signal(SIGUSR1, SIG_IGN);
	}

	// A port where nothing listens: bind one, learn it, close it.
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	probe = socket(AF_INET, SOCK_DGRAM, 0);
	if (probe < 0 || bind(probe, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    getsockname(probe, (struct sockaddr *)&addr, &len) < 0) {
		perror("probe");
		return 1;
	}
	close(probe);

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		perror("connect");
		return 1;
	}
	if (pthread_create(&t, NULL, client, NULL) != 0) {
		fprintf(stderr, "pthread_create failed\n");
		return 1;
	}
	pthread_setname_np(t, "UdpClient");
	printf("ready\n");
	fflush(stdout);
	pthread_join(t, NULL);
	return 0;
}
