// execphase: a process that runs exec in the middle of a window, as a
// wrapper script or a re-exec'ing daemon does. Phase one burns CPU in
// phase_one_burn for DELAY_MS, then execs phasetwo, the same source built
// with -DPHASE_TWO and installed beside it, which burns CPU in
// phase_two_burn until killed. The PID stays; the name (comm) becomes
// "phasetwo"; the mappings are all new, the binary at another address.
//
// Usage: execphase [DELAY_MS [thread]]   (default 1000 ms)
//
// With "thread", phase one burns in a thread named burner, which runs the
// exec itself: the kernel then ends the main thread and gives the burner
// the PID as its TID. Phase one prints "ready" once it burns.

#define _GNU_SOURCE
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile uint64_t sink;

// burn runs a batch of xorshift64, which -O2 cannot fold away.
static inline void burn(uint64_t *x)
{
	for (int i = 0; i < 100000; i++) {
		*x ^= *x << 13;
		*x ^= *x >> 7;
		*x ^= *x << 17;
	}
	sink = *x;
}

#ifdef PHASE_TWO

__attribute__((noinline)) void phase_two_burn(void)
{
	uint64_t x = 88172645463325252ULL;

	for (;;)
		burn(&x);
}

int main(void)
{
	phase_two_burn();
	return 0;
}

#else

static long delay_ms = 1000;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ULL + ts.tv_nsec / 1000000;
}

__attribute__((noinline)) void phase_one_burn(void)
{
	uint64_t x = 88172645463325252ULL, end = now_ms() + delay_ms;

	while (now_ms() < end)
		burn(&x);
}

// exec_phase_two runs phasetwo, found beside this program's own binary.
static void exec_phase_two(void)
{
	char self[PATH_MAX], *slash;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 16);

	if (n < 0) {
		perror("readlink /proc/self/exe");
		exit(1);
	}
	self[n] = 0;
	slash = strrchr(self, '/');
	strcpy(slash + 1, "phasetwo");
	execl(self, "phasetwo", (char *)NULL);
	perror(self);
	exit(1);
}

static void *burner(void *arg)
{
	(void)arg;
	phase_one_burn();
	exec_phase_two();
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t t;

	if (argc > 1)
		delay_ms = atol(argv[1]);
	printf("ready\n");
	fflush(stdout);
	if (argc > 2 && strcmp(argv[2], "thread") == 0) {
		if (pthread_create(&t, NULL, burner, NULL) != 0)
			return 1;
		pthread_setname_np(t, "burner");
		pthread_join(t, NULL);
		return 1;
	}
	burner(NULL);
	return 1;
}

#endif
