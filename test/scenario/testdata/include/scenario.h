// scenario.h: what the C scenarios that take a RATE share.
//
// Copied beside a scenario's sources by the recipes that list it, so each
// program still builds with one gcc command line.
//
// RATE. A scenario that reproduces a pathology (polling, spinning, a
// storm of some syscall) takes a rate in operations per second as its
// first argument: 0 or absent runs flat out, which is the pathology; a
// rate paces the same loop, which is the healthy program on the other
// side of the threshold a diagnosis draws. Tests run both and check that
// only the first is called a bug.
//
// Pacing sleeps once per batch of operations, to absolute deadlines on
// CLOCK_MONOTONIC at least 10 ms apart: never more than 100 sleeps a
// second, so that a paced program does not itself look like the timer
// storm one of the scenarios is about. Absolute deadlines keep the mean
// rate exact however late each wake-up is.
//
// Thread names. The hot thread of every scenario names itself with
// prctl(PR_SET_NAME) before it starts its loop, and start_named returns
// only once it has: a scenario that prints "ready" after starting its
// threads has them named and running, so a test can look them up at once.

#ifndef SCENARIO_H
#define SCENARIO_H

#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

// arg_rate returns argv[i] as a rate (0 when absent) or exits with status
// 2 and a message when it is not a number >= 0.
static inline long arg_rate(int argc, char **argv, int i)
{
	char *end;
	long rate;

	if (i >= argc)
		return 0;
	errno = 0;
	rate = strtol(argv[i], &end, 10);
	if (errno != 0 || end == argv[i] || *end != '\0' || rate < 0) {
		fprintf(stderr, "%s: RATE must be a number of operations per second >= 0, not %s\n",
			argv[0], argv[i]);
		exit(2);
	}
	return rate;
}

struct pace {
	long batch;  // operations per deadline; 0 when unpaced
	long left;   // operations left before the next sleep
	long tick_ns;
	struct timespec deadline;
};

#define PACE_MIN_TICK_NS (10 * 1000 * 1000L)

// pace_init paces to rate operations per second; rate 0 does not pace.
static inline void pace_init(struct pace *p, long rate)
{
	memset(p, 0, sizeof(*p));
	if (rate <= 0)
		return;
	// The smallest batch whose tick is at least 10 ms.
	p->batch = (rate * PACE_MIN_TICK_NS + 999999999L) / 1000000000L;
	if (p->batch < 1)
		p->batch = 1;
	p->tick_ns = (long)((double)p->batch * 1e9 / (double)rate);
	p->left = p->batch;
	clock_gettime(CLOCK_MONOTONIC, &p->deadline);
}

// pace_done counts one operation done, and sleeps to the next deadline
// when the batch is complete. A program that fell more than a second
// behind (stopped, starved of CPU) starts afresh instead of catching up in
// one burst.
static inline void pace_done(struct pace *p)
{
	struct timespec now;

	if (p->batch == 0 || --p->left > 0)
		return;
	p->left = p->batch;
	p->deadline.tv_nsec += p->tick_ns;
	while (p->deadline.tv_nsec >= 1000000000L) {
		p->deadline.tv_nsec -= 1000000000L;
		p->deadline.tv_sec++;
	}
	clock_gettime(CLOCK_MONOTONIC, &now);
	if ((now.tv_sec - p->deadline.tv_sec) * 1000000000L + (now.tv_nsec - p->deadline.tv_nsec) >
	    1000000000L) {
		p->deadline = now;
		return;
	}
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &p->deadline, NULL) == EINTR)
		;
}

struct named_start {
	void *(*fn)(void *);
	void *arg;
	const char *name;
	sem_t started;
};

static inline void *named_trampoline(void *v)
{
	struct named_start *s = v;
	void *(*fn)(void *) = s->fn;
	void *arg = s->arg;

	prctl(PR_SET_NAME, s->name, 0, 0, 0);
	sem_post(&s->started); // s is gone after this
	return fn(arg);
}

// start_named starts fn(arg) on a new thread named name and returns once
// the thread has named itself. It exits the program if it cannot.
static inline pthread_t start_named(const char *name, void *(*fn)(void *), void *arg)
{
	struct named_start s = {.fn = fn, .arg = arg, .name = name};
	pthread_t t;
	int err;

	sem_init(&s.started, 0, 0);
	err = pthread_create(&t, NULL, named_trampoline, &s);
	if (err != 0) {
		fprintf(stderr, "starting thread %s: %s\n", name, strerror(err));
		exit(1);
	}
	while (sem_wait(&s.started) != 0)
		;
	sem_destroy(&s.started);
	return t;
}

// ready tells the test the scenario is set up.
static inline void ready(void)
{
	printf("ready\n");
	fflush(stdout);
}

#endif
