// compute: pure user-space CPU burn, the baseline "it is just working"
// case. A thread named cruncher runs crunch_numbers, which never makes a
// system call, so all of its time is user time in one named function.
// The binary keeps its symbols (it is not stripped) so that the function
// name can be resolved; noinline keeps the frame from melting into its
// caller at -O2.
//
// Usage: compute [THREADS]: THREADS crunchers (default 1), named
// cruncher-0, cruncher-1, ... when more than one: a pool doing the same
// work, which a diagnosis judges as one group.
//
// Prints "ready" once the threads run.

#define _GNU_SOURCE
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

// The result goes to a volatile sink so the compiler cannot drop the loop.
static volatile uint64_t sink;

// Posted by each cruncher as it starts: "ready" means the threads run,
// not merely that they were created (under load a new thread may wait
// for a CPU, and its stack is then only __clone3).
static sem_t started;

__attribute__((noinline)) void crunch_numbers(void)
{
	uint64_t x = 88172645463325252ULL;

	for (;;) {
		for (int i = 0; i < 1000000; i++) {
			// xorshift64: cheap, and not something -O2 can fold away.
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
		}
		sink = x;
	}
}

static void *cruncher(void *arg)
{
	(void)arg;
	sem_post(&started);
	crunch_numbers();
	return NULL;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 1;
	pthread_t t = 0;
	char name[16];

	if (n < 1 || n > 64) {
		fprintf(stderr, "usage: compute [THREADS (1-64)]\n");
		return 2;
	}
	sem_init(&started, 0, 0);
	for (int i = 0; i < n; i++) {
		if (pthread_create(&t, NULL, cruncher, NULL) != 0) {
			fprintf(stderr, "pthread_create failed\n");
			return 1;
		}
		if (n == 1)
			snprintf(name, sizeof(name), "cruncher");
		else
			snprintf(name, sizeof(name), "cruncher-%d", i);
		pthread_setname_np(t, name);
	}
	for (int i = 0; i < n; i++)
		while (sem_wait(&started) != 0)
			;
	printf("ready\n");
	fflush(stdout);
	pthread_join(t, NULL);
	return 0;
}
