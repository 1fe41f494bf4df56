// spawner: threads that come and go, to test that a tracer follows
// threads started while it watches and survives a target that exits.
//
// Usage: spawner [LIFETIME_MS [BURN_MS [COUNT]]]   (defaults 0: run until
// killed, 0: no CPU, 0: no end)
//
// Every 100 ms the main thread starts a thread that names itself
// "spawned", uses BURN_MS of CPU in burn() (its own CPU clock, so the
// same work at any speed of the machine and under any load), makes
// exactly SPAWNED_CALLS getppid(2) calls (a syscall no libc caches and
// nothing else here makes) and exits: with BURN_MS, threads that each
// live less than the time between two rereadings of a thread list. With
// COUNT > 0 it starts its threads only once it gets SIGUSR1, and then
// COUNT of them one after the other, each when the one before has ended,
// and exits: every thread lives inside the window of a recording that
// sends the signal as it begins. With LIFETIME_MS > 0
// the process exits on its own after that many milliseconds, as a target
// that ends in the middle of a trace.

#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SPAWNED_CALLS 10

static long burn_ms;

static double thread_cpu_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

__attribute__((noinline)) static void burn(void)
{
	double end = thread_cpu_ms() + burn_ms;
	volatile unsigned long x = 0;

	while (thread_cpu_ms() < end)
		for (int i = 0; i < 1000; i++)
			x += i;
}

static void *spawned(void *arg)
{
	(void)arg;
	prctl(PR_SET_NAME, "spawned", 0, 0, 0);
	if (burn_ms > 0)
		burn();
	for (int i = 0; i < SPAWNED_CALLS; i++)
		syscall(SYS_getppid);
	return NULL;
}

static int counted(long count)
{
	const struct timespec tick = {.tv_nsec = 100 * 1000 * 1000};
	sigset_t usr1;
	int sig;

	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1, NULL);
	printf("ready\n");
	fflush(stdout);
	sigwait(&usr1, &sig);
	// The first a tick after the signal: a recording that sends it as
	// it is about to start has started by then.
	nanosleep(&tick, NULL);
	for (long i = 0; i < count; i++) {
		pthread_t t;

		if (pthread_create(&t, NULL, spawned, NULL) != 0) {
			fprintf(stderr, "pthread_create failed\n");
			return 1;
		}
		pthread_join(t, NULL);
	}
	return 0;
}

int main(int argc, char **argv)
{
	long lifetime_ms = argc > 1 ? atol(argv[1]) : 0;
	burn_ms = argc > 2 ? atol(argv[2]) : 0;
	long count = argc > 3 ? atol(argv[3]) : 0;
	if (count > 0)
		return counted(count);
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
