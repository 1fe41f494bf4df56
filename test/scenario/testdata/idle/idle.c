// idle: a server with nothing to do, the "this is not the culprit" case.
// A thread named acceptor blocks in accept(2) on a TCP listener on
// 127.0.0.1 (an ephemeral port) and the main thread sits in pause(2), so
// the process uses about 0% CPU while looking like a live server.
//
// Prints "ready" once the listener is up and the thread started.

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int listen_fd;

static void *acceptor(void *arg)
{
	(void)arg;
	for (;;) {
		int c = accept(listen_fd, NULL, NULL);

		if (c >= 0)
			close(c);
	}
	return NULL;
}

int main(void)
{
	struct sockaddr_in addr;
	pthread_t t;

	listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (listen_fd < 0) {
		perror("socket");
		return 1;
	}
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(listen_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    listen(listen_fd, 16) < 0) {
		perror("bind/listen");
		return 1;
	}
	if (pthread_create(&t, NULL, acceptor, NULL) != 0) {
		fprintf(stderr, "pthread_create failed\n");
		return 1;
	}
	pthread_setname_np(t, "acceptor");
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();
}
