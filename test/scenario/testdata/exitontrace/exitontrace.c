// exitontrace: a process that dies while it is being dumped. Its main
// thread waits in epoll_wait(2), which the kernel ends with EINTR when a
// tracer stops the thread, even with no signal handler (signal(7)); the
// process then ends at once (exit_group). A dumper stops the threads one
// by one in TID order, the main thread first, so the process ends after
// the dumper read the main thread and before it read the others: N
// threads sleeping in pause(2) (default 200), as a server with many
// threads that exits during a dump.
//
// Usage: exitontrace [N]
//
// Prints "ready" once every thread runs.

#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

static pthread_barrier_t started;

static void *sleeper(void *arg)
{
	(void)arg;
	pthread_barrier_wait(&started);
	for (;;)
		pause();
	return NULL;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 200;
	pthread_attr_t attr;
	pthread_t t;
	struct epoll_event ev;
	int ep = epoll_create1(0);

	if (ep < 0) {
		perror("epoll_create1");
		return 1;
	}
	pthread_barrier_init(&started, NULL, n + 1);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 << 10);
	for (int i = 0; i < n; i++) {
		if (pthread_create(&t, &attr, sleeper, NULL) != 0) {
			fprintf(stderr, "pthread_create failed\n");
			return 1;
		}
	}
	pthread_barrier_wait(&started);
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		if (epoll_wait(ep, &ev, 1, -1) < 0 && errno == EINTR)
			_exit(0);
	}
}
