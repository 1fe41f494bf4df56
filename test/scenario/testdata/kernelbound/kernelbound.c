// kernelbound: a thread whose CPU time is all in one system call.
//
// A thread named Copier reads a large chunk of /dev/zero into a buffer
// with one read(2), in a loop. The call is not slow because it waits: the
// kernel spends it on the CPU, clearing the caller's memory. So the
// thread is on a CPU all the time, nearly all of it system time, with a
// modest syscall rate (a thousand or so a second) and a long mean
// duration per call: the opposite of a storm of cheap calls, the "one
// expensive syscall" case (large reads of cached files, big memcpy-like
// syscalls, page-cache copies) where the fix is to ask the kernel for
// less, not less often.
//
// The chunk is sized to the machine: what a read costs depends on the
// CPU (8 MiB took about 1 ms on one VM and 0.1 ms on another), and the
// scenario claims a cost per call, not a size. It starts at 1 MiB and
// doubles until the cheapest of three reads takes CALL_NS of the thread's
// own CPU time (so neither preemption nor a loaded machine inflates it),
// up to MAX_CHUNK. Each call then costs between CALL_NS and twice that,
// on a CPU twice as fast or twice as slow.
//
// The buffer is touched before each size is timed so that page faults do
// not blur the picture: every later read writes to memory already mapped.
//
// Usage: kernelbound [RATE]
//   RATE  reads per second; 0 or absent: as fast as possible. Paced, the
//         same reads are an occasional bulk copy.
//
// Prints "ready" once the Copier runs.

#include "scenario.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MIN_CHUNK (1L << 20)
#define MAX_CHUNK (256L << 20)
#define CALL_NS 500000L

static int zero_fd;
static char *buf;
static long chunk = MIN_CHUNK;
static long rate;
static unsigned long bytes_read;

// copy_chunk reads one chunk; the kernel does all the work.
__attribute__((noinline)) static void copy_chunk(void)
{
	ssize_t n = read(zero_fd, buf, chunk);

	if (n > 0)
		bytes_read += (unsigned long)n;
}

static long thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

// calibrate sizes the chunk so that one read costs at least CALL_NS.
static void calibrate(void)
{
	for (;;) {
		long best = -1;

		memset(buf, 1, chunk);
		for (int i = 0; i < 3; i++) {
			long t0 = thread_cpu_ns();

			copy_chunk();
			long t = thread_cpu_ns() - t0;
			if (best < 0 || t < best)
				best = t;
		}
		if (best >= CALL_NS || chunk == MAX_CHUNK)
			return;
		chunk *= 2;
	}
}

static void *copier(void *arg)
{
	struct pace pace;

	(void)arg;
	pace_init(&pace, rate);
	for (;;) {
		copy_chunk();
		pace_done(&pace);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t t;

	rate = arg_rate(argc, argv, 1);
	zero_fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	if (zero_fd < 0) {
		perror("/dev/zero");
		return 1;
	}
	// Reserved at the largest size, touched only as far as it is used.
	buf = mmap(NULL, MAX_CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (buf == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	calibrate();
	t = start_named("Copier", copier, NULL);
	ready();
	pthread_join(t, NULL);
	return 0;
}
