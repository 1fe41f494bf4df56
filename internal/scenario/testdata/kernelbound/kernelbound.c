// kernelbound: a thread whose CPU time is all in one system call.
//
// A thread named Copier reads 8 MiB from /dev/zero into a buffer with one
// read(2), in a loop. The call is not slow because it waits: the kernel
// spends it on the CPU, clearing 8 MiB of the caller's memory. So the
// thread is on a CPU all the time, nearly all of it system time, with a
// modest syscall rate (a thousand or so a second) and a long mean
// duration per call: the opposite of a storm of cheap calls, the "one
// expensive syscall" case (large reads of cached files, big memcpy-like
// syscalls, page-cache copies) where the fix is to ask the kernel for
// less, not less often.
//
// The buffer is touched once before the loop so that page faults do not
// blur the picture: every later read writes to memory already mapped.
//
// Usage: kernelbound [RATE]
//   RATE  reads per second; 0 or absent: as fast as possible. Paced, the
//         same reads are an occasional bulk copy.
//
// Prints "ready" once the Copier runs.

#include "scenario.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#define CHUNK (8L << 20)

static int zero_fd;
static char *buf;
static long rate;
static unsigned long bytes_read;

// copy_chunk reads one chunk; the kernel does all the work.
__attribute__((noinline)) static void copy_chunk(void)
{
	ssize_t n = read(zero_fd, buf, CHUNK);

	if (n > 0)
		bytes_read += (unsigned long)n;
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
	buf = mmap(NULL, CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	memset(buf, 1, CHUNK);
	t = start_named("Copier", copier, NULL);
	ready();
	pthread_join(t, NULL);
	return 0;
}
