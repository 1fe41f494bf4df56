// threads: many threads that do nothing, to measure what cpuwhy costs per
// thread (walking /proc/PID/task, sampling, unwinding).
//
// Usage: threads [N]   (default 1000)
//
// Each thread sleeps in pause(2). Stacks are kept small (64 KiB) so that
// thousands of threads fit in a small test machine. A barrier makes
// "ready" mean that every thread has really started, not just that
// pthread_create returned.

#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
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
	int n = argc > 1 ? atoi(argv[1]) : 1000;
	pthread_attr_t attr;

	if (n < 1) {
		fprintf(stderr, "usage: threads [N>0]\n");
		return 2;
	}
	pthread_barrier_init(&started, NULL, (unsigned)n + 1);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	for (int i = 0; i < n; i++) {
		pthread_t t;
		int err = pthread_create(&t, &attr, sleeper, NULL);

		if (err != 0) {
			fprintf(stderr, "pthread_create %d of %d failed: %d\n", i + 1, n, err);
			return 1;
		}
		pthread_detach(t);
	}
	pthread_barrier_wait(&started);
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();
}
