// zeropoll: an event loop that waits with a timeout of zero.
//
// The busy-poll bug one layer up from busypoll's: the program does call
// poll(2), but with a timeout of 0, so the call returns at once with no
// event and the loop goes round again. Event loops get here when their
// next-timer computation yields 0 (a timer in the past never removed, a
// "nothing pending" encoded as 0 instead of -1). Every call succeeds, so
// an errno split shows nothing wrong: the tell is the rate of waits that
// return no event, and a thread on the CPU all the time.
//
// Usage: zeropoll [RATE [MODE]]
//   RATE  waits per second; 0 or absent: as fast as possible (the bug).
//   MODE  poll (default), epoll (epoll_wait) or select: the same loop with
//         each of the three waiting calls.
//
// A thread named Poller waits for a UDP socket bound to 127.0.0.1 on an
// ephemeral port that nobody sends to, so the socket never becomes ready
// and every wait returns 0 events. The main thread only joins it.
//
// Prints "ready" once the Poller runs.

#include "scenario.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

enum mode { MODE_POLL, MODE_EPOLL, MODE_SELECT };

static int sock_fd, epoll_fd;
static enum mode mode;
static long rate;
static volatile unsigned long events_seen; // stays 0: nobody sends

// wait_for_events is the event loop's wait, with the timeout its caller
// wrongly computed as zero. It returns the number of ready descriptors.
__attribute__((noinline)) static int wait_for_events(void)
{
	switch (mode) {
	case MODE_EPOLL: {
		struct epoll_event ev;

		return epoll_wait(epoll_fd, &ev, 1, 0);
	}
	case MODE_SELECT: {
		fd_set rd;
		struct timeval zero = {0, 0};

		FD_ZERO(&rd);
		FD_SET(sock_fd, &rd);
		return select(sock_fd + 1, &rd, NULL, NULL, &zero);
	}
	default: {
		struct pollfd pfd = {.fd = sock_fd, .events = POLLIN};

		return poll(&pfd, 1, 0);
	}
	}
}

static void *poller(void *arg)
{
	struct pace pace;

	(void)arg;
	pace_init(&pace, rate);
	for (;;) {
		if (wait_for_events() > 0)
			events_seen++;
		pace_done(&pace);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct sockaddr_in addr = {.sin_family = AF_INET};
	const char *m = argc > 2 ? argv[2] : "poll";
	pthread_t t;

	rate = arg_rate(argc, argv, 1);
	if (strcmp(m, "poll") == 0)
		mode = MODE_POLL;
	else if (strcmp(m, "epoll") == 0)
		mode = MODE_EPOLL;
	else if (strcmp(m, "select") == 0)
		mode = MODE_SELECT;
	else {
		fprintf(stderr, "usage: zeropoll [RATE [poll|epoll|select]]\n");
		return 2;
	}

	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sock_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock_fd < 0 || bind(sock_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		perror("socket");
		return 1;
	}
	if (mode == MODE_EPOLL) {
		struct epoll_event ev = {.events = EPOLLIN, .data.fd = sock_fd};

		epoll_fd = epoll_create1(EPOLL_CLOEXEC);
		if (epoll_fd < 0 || epoll_ctl(epoll_fd, EPOLL_CTL_ADD, sock_fd, &ev) < 0) {
			perror("epoll");
			return 1;
		}
	}
	t = start_named("Poller", poller, NULL);
	ready();
	pthread_join(t, NULL);
	return 0;
}
