// lockstorm: threads that spend their time fighting over one mutex.
//
// THREADS threads named Worker share one pthread mutex that guards a small
// statistics table, and take it for every event they count, holding it
// only for a few instructions (update_shared_stats). Between two
// acquisitions a worker does a little work of its own (make_event). With
// the lock held for a good part of every loop and more workers than
// cores, most attempts find it taken: glibc's default mutex then sleeps
// in futex(FUTEX_WAIT) and the holder pays a futex(FUTEX_WAKE) on unlock.
// The threads are busy, partly in the kernel, yet little work gets done:
// the lock, not the work, is the bottleneck.
//
// Workers are pinned round robin to the CPUs the process may use, as
// thread-per-core servers pin theirs. Contention needs two workers running
// at the same moment: left to itself, the scheduler of a small busy
// machine may put every worker on one CPU, where they only meet at the
// lock when one is preempted inside the critical section, and the storm
// comes and goes from one second to the next (measured on a loaded 2-core
// VM: 300 to 1.5M futex calls a second between runs; pinned, 2M every
// time). With a single CPU allowed there is no storm to reproduce.
//
// Usage: lockstorm [RATE [THREADS]]
//   RATE     lock acquisitions per second, all workers together (each
//            paces to RATE/THREADS); 0 or absent: as fast as possible (the
//            bug). Paced, the same workers rarely meet at the lock, and
//            futex calls become rare.
//   THREADS  number of workers, default 4.
//
// Prints "ready" once every worker runs.

#include "scenario.h"

#include <sched.h>
#include <stdint.h>

#define SLOTS 64

static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long stats[SLOTS];
static unsigned long events_counted;
static long rate_per_worker;
static cpu_set_t allowed; // the CPUs the process may use

// make_event is a worker's own work between two acquisitions: a few
// rounds of xorshift, a stand-in for parsing a request.
__attribute__((noinline)) static uint64_t make_event(uint64_t x)
{
	for (int i = 0; i < 16; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
	}
	return x;
}

// update_shared_stats is the critical section: tiny, as they usually are
// when a lock becomes a storm.
__attribute__((noinline)) static void update_shared_stats(uint64_t event)
{
	pthread_mutex_lock(&stats_lock);
	stats[event % SLOTS]++;
	events_counted++;
	pthread_mutex_unlock(&stats_lock);
}

// pin_to_nth_cpu pins the calling thread to the n-th allowed CPU, counted
// round robin.
static void pin_to_nth_cpu(long n)
{
	int count = CPU_COUNT(&allowed), seen = 0;
	cpu_set_t one;

	CPU_ZERO(&one);
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (!CPU_ISSET(cpu, &allowed))
			continue;
		if (seen++ == n % count) {
			CPU_SET(cpu, &one);
			sched_setaffinity(0, sizeof(one), &one);
			return;
		}
	}
}

static void *worker(void *arg)
{
	long index = (long)(uintptr_t)arg;
	uint64_t x = 88172645463325252ULL ^ (uint64_t)index;
	struct pace pace;

	pin_to_nth_cpu(index);
	pace_init(&pace, rate_per_worker);
	for (;;) {
		x = make_event(x);
		update_shared_stats(x);
		pace_done(&pace);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	long rate = arg_rate(argc, argv, 1);
	int n = argc > 2 ? atoi(argv[2]) : 4;
	pthread_t t = 0;

	if (n < 1 || n > 1024) {
		fprintf(stderr, "usage: lockstorm [RATE [THREADS (1-1024)]]\n");
		return 2;
	}
	rate_per_worker = rate > 0 ? (rate + n - 1) / n : 0;
	if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) {
		perror("sched_getaffinity");
		return 1;
	}
	for (long i = 0; i < n; i++)
		t = start_named("Worker", worker, (void *)(uintptr_t)i);
	ready();
	pthread_join(t, NULL);
	return 0;
}
