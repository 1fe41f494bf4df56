// writestorm: a logger that writes every line with its own write(2).
//
// A thread named Logger formats short log lines (a timestamp, a sequence
// number, a message) and writes each with one write(2) on a file opened
// with O_APPEND, with no buffering in user space: the "unbuffered stderr
// logging at debug level" shape. Each call is cheap and succeeds, but
// hundreds of thousands a second keep a core busy, mostly in the kernel
// (the file system's write path and the page cache).
//
// So that the disk never fills, the Logger truncates the file to zero
// every 4 MiB, as a size-based log rotation with nothing kept would. The
// data rarely reaches the disk at all: it is truncated from the page
// cache long before writeback.
//
// Usage: writestorm [RATE [DIR]]
//   RATE  lines per second; 0 or absent: as fast as possible (the bug).
//         Paced, the same logger is a program that logs a sane amount.
//   DIR   where to write DIR/writestorm.log, which is left behind for its
//         owner to remove. Without DIR (or with DIR empty) the file is a
//         temporary file in $TMPDIR (default /tmp), unlinked as soon as it
//         is open, so a scenario killed with SIGKILL leaves nothing
//         behind; its descriptor then reads as "... (deleted)".
//
// Prints "ready" once the file is open and the Logger runs.

#include "scenario.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define ROTATE_BYTES (4L << 20)

static int log_fd;
static long rate;

// log_line formats one line and writes it with one system call.
__attribute__((noinline)) static ssize_t log_line(unsigned long seq)
{
	char line[128];
	struct timespec now;
	int n;

	clock_gettime(CLOCK_REALTIME, &now);
	n = snprintf(line, sizeof(line), "%lld.%06ld DEBUG worker: handled request %lu, status ok\n",
		     (long long)now.tv_sec, now.tv_nsec / 1000, seq);
	return write(log_fd, line, (size_t)n);
}

static void *logger(void *arg)
{
	struct pace pace;
	long written = 0;

	(void)arg;
	pace_init(&pace, rate);
	for (unsigned long seq = 0;; seq++) {
		ssize_t n = log_line(seq);

		if (n > 0)
			written += n;
		if (written >= ROTATE_BYTES) {
			if (ftruncate(log_fd, 0) != 0)
				perror("ftruncate");
			written = 0;
		}
		pace_done(&pace);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	const char *dir = argc > 2 ? argv[2] : "";
	char path[4096];
	pthread_t t;

	rate = arg_rate(argc, argv, 1);
	if (*dir != '\0') {
		if (snprintf(path, sizeof(path), "%s/writestorm.log", dir) >= (int)sizeof(path)) {
			fprintf(stderr, "writestorm: directory name too long\n");
			return 2;
		}
		log_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
	} else {
		const char *tmp = getenv("TMPDIR");

		snprintf(path, sizeof(path), "%s/writestorm.XXXXXX", tmp && *tmp ? tmp : "/tmp");
		log_fd = mkostemp(path, O_APPEND | O_CLOEXEC);
		if (log_fd >= 0)
			unlink(path);
	}
	if (log_fd < 0) {
		perror(path);
		return 1;
	}
	t = start_named("Logger", logger, NULL);
	ready();
	pthread_join(t, NULL);
	return 0;
}
