// spinyield: a thread that waits for other threads by spinning.
//
// A thread named Spinner waits for work that a thread named Producer hands
// over rarely (every 100 ms) through a flag, and instead of sleeping on a
// futex or a condition variable it polls the flag:
//
//   - yield: sched_yield(2) between checks, the "polite" spin. On an idle
//     core sched_yield returns at once, so the thread still uses a whole
//     core, half of it in the kernel, in a storm of one cheap syscall.
//   - spin: a user-space spin, as a hand-written spin lock does: an atomic
//     load and the pause instruction, no syscall at all. All its time is
//     user time in spin_wait_for_work, which a stack sample shows.
//
// Both functions are noinline and the binary keeps its symbols, so stacks
// name them.
//
// Usage: spinyield [RATE [MODE]]
//   RATE  checks of the flag per second; 0 or absent: as fast as
//         possible (the bug). A paced Spinner is a polling waiter that
//         sleeps between checks: wasteful latency, but cheap.
//   MODE  yield (default) or spin.
//
// Prints "ready" once both threads run.

#include "scenario.h"

#include <sched.h>

static int work_ready; // set by Producer, cleared by Spinner (atomics only)
static unsigned long handed_over;
static long rate;

// yield_wait_for_work checks the flag, yielding the CPU between checks.
__attribute__((noinline)) static void yield_wait_for_work(struct pace *pace)
{
	while (!__atomic_load_n(&work_ready, __ATOMIC_ACQUIRE)) {
		sched_yield();
		pace_done(pace);
	}
}

// spin_wait_for_work checks the flag in a pause loop, as a spin lock's
// acquire does.
__attribute__((noinline)) static void spin_wait_for_work(struct pace *pace)
{
	while (!__atomic_load_n(&work_ready, __ATOMIC_ACQUIRE)) {
		__builtin_ia32_pause();
		pace_done(pace);
	}
}

static void *spinner(void *arg)
{
	int spin = arg != NULL;
	struct pace pace;

	pace_init(&pace, rate);
	for (;;) {
		if (spin)
			spin_wait_for_work(&pace);
		else
			yield_wait_for_work(&pace);
		__atomic_store_n(&work_ready, 0, __ATOMIC_RELEASE);
		handed_over++;
	}
	return NULL;
}

static void *producer(void *arg)
{
	const struct timespec interval = {.tv_nsec = 100 * 1000 * 1000};

	(void)arg;
	for (;;) {
		nanosleep(&interval, NULL);
		__atomic_store_n(&work_ready, 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	const char *m = argc > 2 ? argv[2] : "yield";
	pthread_t t;

	rate = arg_rate(argc, argv, 1);
	if (strcmp(m, "yield") != 0 && strcmp(m, "spin") != 0) {
		fprintf(stderr, "usage: spinyield [RATE [yield|spin]]\n");
		return 2;
	}
	start_named("Producer", producer, NULL);
	t = start_named("Spinner", spinner, strcmp(m, "spin") == 0 ? (void *)1 : NULL);
	ready();
	pthread_join(t, NULL);
	return 0;
}
