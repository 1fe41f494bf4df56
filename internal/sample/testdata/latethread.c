// latethread: a process that starts its busy thread only after it has
// been running for a while, to test that a sampler follows threads that
// appear during a recording (spawner's threads live for microseconds, too
// short for a 99 Hz sampler to ever catch one on CPU).
//
// Usage: latethread DELAY_MS. Prints "ready" at once; after DELAY_MS
// starts a thread named latecomer that spins in user code forever.

#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static volatile uint64_t sink;

static void *latecomer(void *arg)
{
	uint64_t x = 1;

	(void)arg;
	for (;;)
		sink = x = x * 6364136223846793005ULL + 1;
	return NULL;
}

int main(int argc, char **argv)
{
	long delay_ms = argc > 1 ? atol(argv[1]) : 300;
	struct timespec d = {.tv_sec = delay_ms / 1000, .tv_nsec = (delay_ms % 1000) * 1000000};
	pthread_t t;

	printf("ready\n");
	fflush(stdout);
	nanosleep(&d, NULL);
	if (pthread_create(&t, NULL, latecomer, NULL) != 0)
		return 1;
	pthread_setname_np(t, "latecomer");
	pthread_join(t, NULL);
	return 0;
}
