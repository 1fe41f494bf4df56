// timerstorm: a thread that sleeps for almost nothing, over and over.
//
// A thread named Ticker waits for a timer whose period is far below what
// a sleep can honour, the way a loop with a "sleep(1 µs) to be nice"
// back-off or a timer wheel ticking every few microseconds does:
//
//   - sleep: nanosleep(2) of 1 µs in a loop (glibc makes it a
//     clock_nanosleep call). Each sleep arms an hrtimer, switches away and
//     back: the thread is rarely on the CPU for long, yet the CPU it gets
//     goes to the kernel's timer and scheduler paths.
//   - timerfd: a timerfd with a 10 µs interval, read(2) in a loop; each
//     read blocks until the next expiry.
//
// Either way the time goes to arming timers and context switches, tens of
// thousands of times a second, for no work.
//
// The Ticker sets its timer slack to 1 ns (PR_SET_TIMERSLACK), as
// latency-minded programs do (real-time threads get no slack at all).
// With the default 50 µs slack the kernel stretches each 1 µs sleep to
// about 50 µs: measured on a 2-core VM, 15K sleeps a second and a tenth of
// a core, a smaller storm; with 1 ns, 170K sleeps and a whole core, nearly
// all system time. timerfd expiries take no slack.
//
// Usage: timerstorm [RATE [MODE]]
//   RATE  waits per second; 0 or absent: as fast as the timer allows
//         (the bug). Paced, the same short waits come in batches every
//         10 ms and the thread is idle in between.
//   MODE  sleep (default) or timerfd.
//
// Prints "ready" once the Ticker runs.

#include "scenario.h"

#include <stdint.h>
#include <sys/timerfd.h>
#include <unistd.h>

static long rate;
static int timer_fd = -1;
static unsigned long expirations;

// wait_next_tick waits for the next tick of the far too fast timer.
__attribute__((noinline)) static void wait_next_tick(void)
{
	if (timer_fd >= 0) {
		uint64_t n;

		if (read(timer_fd, &n, sizeof(n)) == sizeof(n))
			expirations += n;
	} else {
		const struct timespec tick = {.tv_nsec = 1000};

		nanosleep(&tick, NULL);
		expirations++;
	}
}

static void *ticker(void *arg)
{
	struct pace pace;

	(void)arg;
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
	pace_init(&pace, rate);
	for (;;) {
		wait_next_tick();
		pace_done(&pace);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	const char *m = argc > 2 ? argv[2] : "sleep";
	pthread_t t;

	rate = arg_rate(argc, argv, 1);
	if (strcmp(m, "timerfd") == 0) {
		struct itimerspec every10us = {
			.it_interval = {.tv_nsec = 10000},
			.it_value = {.tv_nsec = 10000},
		};

		timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
		if (timer_fd < 0 || timerfd_settime(timer_fd, 0, &every10us, NULL) < 0) {
			perror("timerfd");
			return 1;
		}
	} else if (strcmp(m, "sleep") != 0) {
		fprintf(stderr, "usage: timerstorm [RATE [sleep|timerfd]]\n");
		return 2;
	}
	t = start_named("Ticker", ticker, NULL);
	ready();
	pthread_join(t, NULL);
	return 0;
}
