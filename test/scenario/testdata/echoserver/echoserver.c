// echoserver: a healthy busy server, the case no bug verdict may hit.
//
// A thread named Server answers requests on a UDP socket bound to
// 127.0.0.1: it blocks in recvfrom(2) until a request arrives, does a bit
// of real work on it (hash_request, about 15 µs of hashing the
// payload), and sends the digest back with sendto(2). A thread named
// Client in the same process sends requests at RATE a second and waits
// for each answer. Everything busypoll, zeropoll and refused get wrong,
// this gets right: every call succeeds, receives block until there is
// something to receive, and the CPU goes to work in proportion to the
// requests. It can still use a fair share of a core: busy, not broken.
//
// Usage: echoserver [RATE]
//   RATE  requests per second (default 20000); 0: as fast as the two
//         threads can go, a request-response ping-pong that is still
//         healthy, only busier.
//
// Only 127.0.0.1 is used: the server on an ephemeral port, the client
// connected to it.
//
// Prints "ready" once both threads run.

#include "scenario.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#define PAYLOAD 256
#define HASH_ROUNDS 40

static int server_fd, client_fd;
static long rate = 20000;
static unsigned long served, answered;

// hash_request is the real work done for each request: FNV-1a over the
// payload, a few rounds of it.
__attribute__((noinline)) static uint64_t hash_request(const unsigned char *p, size_t n)
{
	uint64_t h = 1469598103934665603ULL;

	for (int round = 0; round < HASH_ROUNDS; round++)
		for (size_t i = 0; i < n; i++) {
			h ^= p[i];
			h *= 1099511628211ULL;
		}
	return h;
}

static void *server(void *arg)
{
	unsigned char req[PAYLOAD];

	(void)arg;
	for (;;) {
		struct sockaddr_in from;
		socklen_t fromlen = sizeof(from);
		ssize_t n = recvfrom(server_fd, req, sizeof(req), 0, (struct sockaddr *)&from, &fromlen);
		uint64_t digest;

		if (n < 0)
			continue;
		digest = hash_request(req, (size_t)n);
		if (sendto(server_fd, &digest, sizeof(digest), 0, (struct sockaddr *)&from, fromlen) ==
		    sizeof(digest))
			served++;
	}
	return NULL;
}

static void *client(void *arg)
{
	unsigned char req[PAYLOAD];
	uint64_t digest;
	struct pace pace;

	(void)arg;
	pace_init(&pace, rate);
	for (unsigned long seq = 0;; seq++) {
		memset(req, (int)(seq & 0xff), sizeof(req));
		memcpy(req, &seq, sizeof(seq));
		if (send(client_fd, req, sizeof(req), 0) == sizeof(req) &&
		    recv(client_fd, &digest, sizeof(digest), 0) == sizeof(digest))
			answered++;
		pace_done(&pace);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct sockaddr_in addr = {.sin_family = AF_INET};
	socklen_t len = sizeof(addr);
	pthread_t t;

	if (argc > 1)
		rate = arg_rate(argc, argv, 1);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	server_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (server_fd < 0 || bind(server_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    getsockname(server_fd, (struct sockaddr *)&addr, &len) < 0) {
		perror("server socket");
		return 1;
	}
	client_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (client_fd < 0 || connect(client_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		perror("client socket");
		return 1;
	}
	t = start_named("Server", server, NULL);
	start_named("Client", client, NULL);
	ready();
	pthread_join(t, NULL);
	return 0;
}
