// hostile: a process whose every name attacks the terminal that shows it
// (issue 18): escape sequences that set the title or clear the screen,
// newlines that would forge report lines, invalid UTF-8, a C1 control, DEL
// and a bidi override. cpuwhy must print all of them escaped, in every text
// output, and exactly in JSON.
//
// Usage: hostile [idle]
//
// It re-executes itself through /proc/self/exe with a hostile argv, so its
// command line is hostile; then names itself (comm, prctl PR_SET_NAME) and
// its threads. Its thread "\e[2Jhot\nfake" burns CPU in burn(), whose
// symbol the recipe renames with objcopy to one holding ESC, BEL, a newline
// and an invalid byte, and between bursts writes to a memfd and sends a
// datagram to its own abstract unix socket, both with hostile names, so
// that the syscall profile names those fds. Two more threads sleep under
// the other names. With "idle" the hot thread sleeps too: a second
// instance, for a name that matches two processes, costs no CPU.
//
// Prints "ready" once every thread is named.

#define _GNU_SOURCE
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

// The names, as bytes. A thread name is at most 15 bytes.
#define COMM_NAME "\x1b]0;PWNED\a\nhx\xff"
#define HOT_NAME "\x1b[2Jhot\nfake"
#define BIDI_NAME "\xe2\x80\xaetops\xc2\x9b\x7f" // U+202E, "tops", U+009B (CSI), DEL
#define BYTES_NAME "\xff\xfe\xc3(\t\r"
#define MEMFD_NAME "hostile\x1b]0;FD\a\nforged\xff"
#define SOCKET_NAME "hostile\x1b]0;SOCK\a\xff\xe2\x80\xae" // abstract: no newline, see below

static char *const hostile_argv[] = {
	"\x1b]0;ARGV\a", "\x1b[2J", "line\nforged: 99.9% of a core", "\xff\xfe",
	"\xe2\x80\xae" "evil", "\xc2\x9b" "31m", NULL, NULL,
};

static volatile uint64_t sink;

// burn is renamed in .symtab by the recipe (objcopy --redefine-sym), so a
// stack through it carries a hostile symbol name.
__attribute__((noinline)) void burn(long iterations)
{
	uint64_t x = 88172645463325252ULL;

	for (long i = 0; i < iterations; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
	}
	sink = x;
}

static int idle;
static int memfd = -1, sock = -1;
static struct sockaddr_un addr;
static socklen_t addrlen;

static void *hot(void *arg)
{
	const struct timespec nap = {.tv_nsec = 1000 * 1000};
	char byte = 'x', buf[8];

	(void)arg;
	for (;;) {
		if (idle) {
			pause();
			continue;
		}
		burn(2 * 1000 * 1000); // about 2 ms
		if (pwrite(memfd, &byte, 1, 0) != 1)
			perror("pwrite");
		if (sendto(sock, &byte, 1, 0, (struct sockaddr *)&addr, addrlen) == 1)
			(void)recv(sock, buf, sizeof(buf), 0);
		nanosleep(&nap, NULL);
	}
	return NULL;
}

static void *sleeper(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

static pthread_t start(void *(*fn)(void *))
{
	pthread_t t;
	int err = pthread_create(&t, NULL, fn, NULL);

	if (err != 0) {
		fprintf(stderr, "pthread_create: %s\n", strerror(err));
		exit(1);
	}
	return t;
}

int main(int argc, char **argv)
{
	pthread_t t;

	if (getenv("HOSTILE_REEXEC") == NULL) {
		char *av[sizeof(hostile_argv) / sizeof(hostile_argv[0])];

		memcpy(av, hostile_argv, sizeof(av));
		if (argc > 1)
			av[6] = argv[1]; // the mode rides after the hostile arguments
		setenv("HOSTILE_REEXEC", "1", 1);
		execv("/proc/self/exe", av);
		perror("execv /proc/self/exe");
		return 1;
	}
	idle = argc > 6 && strcmp(argv[6], "idle") == 0;

	memfd = memfd_create(MEMFD_NAME, 0);
	if (memfd < 0) {
		perror("memfd_create");
		return 1;
	}
	// An abstract name, unique per process. No newline: /proc/net/unix
	// prints the name raw, one socket a line, and a newline would only
	// split its line (what the table parser makes of that is its own test).
	sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	if (sock < 0) {
		perror("socket");
		return 1;
	}
	addr.sun_family = AF_UNIX;
	int n = snprintf(addr.sun_path + 1, sizeof(addr.sun_path) - 1, "%s%d", SOCKET_NAME, (int)getpid());
	addrlen = offsetof(struct sockaddr_un, sun_path) + 1 + n;
	if (bind(sock, (struct sockaddr *)&addr, addrlen) != 0) {
		perror("bind");
		return 1;
	}

	prctl(PR_SET_NAME, COMM_NAME, 0, 0, 0);
	t = start(hot);
	pthread_setname_np(t, HOT_NAME);
	pthread_setname_np(start(sleeper), BIDI_NAME);
	pthread_setname_np(start(sleeper), BYTES_NAME);
	printf("ready\n");
	fflush(stdout);
	pthread_join(t, NULL);
	return 0;
}
