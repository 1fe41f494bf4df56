// spawner: threads that come and go, to test that a tracer follows
// threads started while it watches and survives a target that exits.
//
// Usage: spawner [LIFETIME_MS]   (default 0: run until killed)
//
// Every 100 ms the main thread starts a thread that names itself
// "spawned", makes exactly SPAWNED_CALLS getppid(2) calls (a syscall no
// libc caches and nothing else here makes) and exits. With LIFETIME_MS > 0
// the process exits on its own after that many milliseconds, as a target
// that ends in the middle of a trace.

#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SPAWNED_CALLS 10

static void *spawned(void *arg)
{
	(void)arg;
	prctl(PR_SET_NAME, "spawned", 0, 0, 0);
	for (int i = 0; i < SPAWNED_CALLS; i++)
		syscall(SYS_getppid);
	return NULL;
}

int main(int argc, char **argv)
{
	long lifetime_ms = argc > 1 ? atol(argv[1]) : 0;
	const struct timespec tick = {.tv_nsec = 100 * 1000 * 1000};
	struct timespec start, now;

	clock_gettime(CLOCK_MONOTONIC, &start);
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		pthread_t t;

		nanosleep(&tick, NULL);
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (lifetime_ms > 0 &&
		    (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 >= lifetime_ms)
			return 0;
		if (pthread_create(&t, NULL, spawned, NULL) != 0) {
			fprintf(stderr, "pthread_create failed\n");
			return 1;
		}
		pthread_detach(t);
	}
}
