// threads: many threads that do nothing, to measure what cpuwhy costs per
// thread (walking /proc/PID/task, sampling, unwinding).
//
// Usage: threads [N [BUSY]]   (default 1000 threads, 0 busy)
//
// Each thread sleeps in pause(2), except the first BUSY, named "busy", which
// each burn 1 ms of CPU every 10 ms: about a tenth of a core. They exist so
// that the process keeps using CPU, as a server with a few active threads
// among many idle ones does, and a tool cannot skip its threads as idle.
// They burst rather than spin so that a benchmark on a small machine keeps
// most of its cores.
//
// Stacks are kept small (64 KiB) so that thousands of threads fit in a
// small test machine. A barrier makes "ready" mean that every thread has
// really started, not just that pthread_create returned.

#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
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

static long long thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void *busy(void *arg)
{
	const struct timespec nap = {.tv_nsec = 9 * 1000 * 1000};

	(void)arg;
	pthread_barrier_wait(&started);
	for (;;) {
		long long until = thread_cpu_ns() + 1000 * 1000;

		while (thread_cpu_ns() < until)
			;
		nanosleep(&nap, NULL);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 1000;
	int nbusy = argc > 2 ? atoi(argv[2]) : 0;
	pthread_attr_t attr;

	if (n < 1 || nbusy < 0 || nbusy > n) {
		fprintf(stderr, "usage: threads [N>0 [BUSY<=N]]\n");
		return 2;
	}
	pthread_barrier_init(&started, NULL, (unsigned)n + 1);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	for (int i = 0; i < n; i++) {
		pthread_t t;
		int err = pthread_create(&t, &attr, i < nbusy ? busy : sleeper, NULL);

		if (err != 0) {
			fprintf(stderr, "pthread_create %d of %d failed: %d\n", i + 1, n, err);
			return 1;
		}
		if (i < nbusy)
			pthread_setname_np(t, "busy");
		pthread_detach(t);
	}
	pthread_barrier_wait(&started);
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();
}
