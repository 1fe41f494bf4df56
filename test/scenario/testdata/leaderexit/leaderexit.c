// leaderexit: a process whose main thread has exited while another runs
// on, as a daemon that ends main() with pthread_exit does. The kernel
// then shows the main thread as a zombie, and the process's memory map,
// root and fds are no longer reachable through its PID.
//
// Usage: leaderexit
//
// The thread "worker" spins in user space. "ready" is printed before the
// main thread exits, once the worker has named itself: a test that reads
// its name must not race the rename.

#define _GNU_SOURCE
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>

static volatile unsigned long work;
static sem_t named;

static void *spin(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "worker");
	sem_post(&named);
	for (;;)
		work++;
	return NULL;
}

int main(void)
{
	pthread_t t;

	sem_init(&named, 0, 0);
	if (pthread_create(&t, NULL, spin, NULL) != 0)
		return 1;
	while (sem_wait(&named) != 0)
		;
	printf("ready\n");
	fflush(stdout);
	pthread_exit(NULL);
}
