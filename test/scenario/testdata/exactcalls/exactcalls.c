// exactcalls: a known number of system calls, made when told, to check
// that a tracer counts every one (none lost, none twice).
//
// Usage: exactcalls runs N       three threads, started together:
//          runner      N x getppid()                      (one key, a run of N)
//          alternator  N x (read(a, 1 byte), read(b, 1 byte)) (two keys in turn,
//                      N bytes each)
//          burster     N/12 x (7 x fcntl(1000, F_GETFD), 5 x fcntl(1001,
//                      F_GETFD))                          (runs of 7 and 5, EBADF)
//        exactcalls sockets N R   one thread, poller: N non-blocking UDP sockets on
//                      loopback, then R rounds of recvfrom on each (EAGAIN): N
//                      keys made in a burst, R calls each
//
// Prints "ready" with everything opened and the threads started and named,
// waits for a line on stdin, makes the calls, and prints "done". After
// their calls the threads make no other system call until the process is
// killed: they spin, and the main thread waits for them spinning too, so
// that the only call after the last ones counted is the write of "done".
// A tracer that keeps a CPU's last calls pending (cpuwhy's per-CPU slot)
// must then find them where they are, not count on a later call of the
// process to flush them. (They spin until killed: kill the process at
// once after reading "done" and detaching.)

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static long n, rounds;
static int za, zb;
static int *socks;
static pthread_barrier_t go;
static int finished;

// spin tells main that this thread is done, and spins, making no call.
static void spin(void)
{
	__atomic_add_fetch(&finished, 1, __ATOMIC_SEQ_CST);
	for (;;)
		__asm__ volatile("" ::: "memory");
}

static void *runner(void *arg)
{
	(void)arg;
	prctl(PR_SET_NAME, "runner");
	pthread_barrier_wait(&go);
	for (long i = 0; i < n; i++)
		getppid();
	spin();
	return NULL;
}

static void *alternator(void *arg)
{
	char c;

	(void)arg;
	prctl(PR_SET_NAME, "alternator");
	pthread_barrier_wait(&go);
	for (long i = 0; i < n; i++) {
		if (read(za, &c, 1) != 1 || read(zb, &c, 1) != 1)
			abort();
	}
	spin();
	return NULL;
}

static void *burster(void *arg)
{
	(void)arg;
	prctl(PR_SET_NAME, "burster");
	pthread_barrier_wait(&go);
	for (long i = 0; i < n / 12; i++) {
		for (int j = 0; j < 7; j++)
			fcntl(1000, F_GETFD);
		for (int j = 0; j < 5; j++)
			fcntl(1001, F_GETFD);
	}
	spin();
	return NULL;
}

static void *poller(void *arg)
{
	char buf[64];

	(void)arg;
	prctl(PR_SET_NAME, "poller");
	pthread_barrier_wait(&go);
	for (long r = 0; r < rounds; r++)
		for (long i = 0; i < n; i++)
			recvfrom(socks[i], buf, sizeof(buf), 0, NULL, NULL);
	spin();
	return NULL;
}

static void usage(void)
{
	fprintf(stderr, "usage: exactcalls runs N | exactcalls sockets N ROUNDS\n");
	exit(2);
}

int main(int argc, char **argv)
{
	pthread_t t;
	int threads;
	char line[16];

	if (argc < 3 || (n = atol(argv[2])) <= 0)
		usage();
	if (strcmp(argv[1], "runs") == 0) {
		za = open("/dev/zero", O_RDONLY);
		zb = open("/dev/zero", O_RDONLY);
		if (za < 0 || zb < 0) {
			perror("open /dev/zero");
			return 1;
		}
		threads = 3;
		pthread_barrier_init(&go, NULL, threads + 1);
		pthread_create(&t, NULL, runner, NULL);
		pthread_create(&t, NULL, alternator, NULL);
		pthread_create(&t, NULL, burster, NULL);
	} else if (strcmp(argv[1], "sockets") == 0 && argc == 4 && (rounds = atol(argv[3])) > 0) {
		struct rlimit rl = {.rlim_cur = n + 64, .rlim_max = n + 64};
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

		if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
			perror("setrlimit");
			return 1;
		}
		socks = calloc(n, sizeof(*socks));
		for (long i = 0; i < n; i++) {
			socks[i] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
			if (socks[i] < 0 || bind(socks[i], (struct sockaddr *)&a, sizeof(a)) != 0) {
				perror("socket");
				return 1;
			}
		}
		threads = 1;
		pthread_barrier_init(&go, NULL, threads + 1);
		pthread_create(&t, NULL, poller, NULL);
	} else {
		usage();
	}
	// Names are set before the threads reach the barrier.
	usleep(10000);
	printf("ready\n");
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		return 1;
	pthread_barrier_wait(&go);
	while (__atomic_load_n(&finished, __ATOMIC_SEQ_CST) < threads)
		__asm__ volatile("" ::: "memory");
	printf("done\n");
	fflush(stdout);
	for (;;)
		pause();
}
