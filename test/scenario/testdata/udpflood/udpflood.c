// udpflood: a UDP flood on loopback, in a network namespace of its own,
// for a real softirq load.
//
// The program moves itself into a new network namespace (unshare, as
// root), brings its loopback up, and sends small datagrams to a socket of
// its own as fast as it can from a thread named Flooder. On loopback a
// datagram is received in the NET_RX softirq the sender raises, run on
// the sender's CPU as it leaves the send: the kernel's receive path, not
// the program, takes a good part of that CPU, and /proc/stat counts it as
// softirq time. A thread named Sink drains the socket in blocking reads,
// so that the queue stays short and every packet is received.
//
// Nothing leaves the namespace, which goes away with the process. The
// flood is bounded in time: the program exits after SECONDS (default 30),
// whatever happens to the test that started it.
//
// Usage: udpflood [RATE [SECONDS]]
//   RATE     datagrams per second; 0 or absent: as fast as possible.
//
// Prints "ready" once both threads run.

#include "scenario.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static int rx, tx;
static struct sockaddr_in to;
static long rate;

static void loopback_up(void)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM, 0);

	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "lo");
	if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
		perror("SIOCGIFFLAGS lo");
		exit(1);
	}
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) {
		perror("SIOCSIFFLAGS lo");
		exit(1);
	}
	close(s);
}

__attribute__((noinline)) static void send_datagram(const char *buf, size_t n)
{
	sendto(tx, buf, n, 0, (struct sockaddr *)&to, sizeof(to));
}

static void *flooder(void *arg)
{
	char buf[64] = "flood";
	struct pace pace;

	(void)arg;
	pace_init(&pace, rate);
	for (;;) {
		send_datagram(buf, sizeof(buf));
		pace_done(&pace);
	}
	return NULL;
}

static void *sink(void *arg)
{
	char buf[2048];

	(void)arg;
	for (;;)
		recv(rx, buf, sizeof(buf), 0);
	return NULL;
}

int main(int argc, char **argv)
{
	long seconds = argc > 2 ? arg_rate(argc, argv, 2) : 30;
	socklen_t len = sizeof(to);
	pthread_t t;

	rate = arg_rate(argc, argv, 1);
	if (seconds < 1)
		seconds = 1;
	alarm((unsigned)seconds); // SIGALRM ends the flood
	if (unshare(CLONE_NEWNET) != 0) {
		perror("unshare(CLONE_NEWNET)");
		return 1;
	}
	loopback_up();
	rx = socket(AF_INET, SOCK_DGRAM, 0);
	tx = socket(AF_INET, SOCK_DGRAM, 0);
	memset(&to, 0, sizeof(to));
	to.sin_family = AF_INET;
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (rx < 0 || tx < 0 || bind(rx, (struct sockaddr *)&to, sizeof(to)) != 0 ||
	    getsockname(rx, (struct sockaddr *)&to, &len) != 0) {
		perror("socket");
		return 1;
	}
	start_named("Sink", sink, NULL);
	t = start_named("Flooder", flooder, NULL);
	ready();
	pthread_join(t, NULL);
	return 0;
}
