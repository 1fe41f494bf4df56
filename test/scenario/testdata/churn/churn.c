// churn: a supervisor that starts a short-lived program, over and over.
//
// A thread named Supervisor forks, the child execs a program that exits at
// once, and the Supervisor waits for it and starts the next: the shape of
// a health check run as a subprocess in a tight loop, a shell script's
// "while true; do cmd; done", or a crash-looping child restarted without
// back-off. Most of the CPU is not the Supervisor's: each fork copies its
// page tables, each exec maps and links a new image (ld.so, libc), each
// exit tears it down, all in children that live about a millisecond.
// Per-thread CPU of the parent shows little; the children's CPU reaches
// the parent's cutime/cstime when they are reaped, and the tell is the
// rate of clone/wait4 in the parent (and of execve, exit_group in the
// children, which are other processes).
//
// The child is this same program run as "churn --child", which exits 0
// at once: no dependency on /bin/true, which a container may lack. It is
// exec'd by the path /proc/self/exe resolves to at startup, so the
// children are named "churn", not "exe".
//
// Usage: churn [RATE]
//   RATE  children per second; 0 or absent: as fast as possible (the bug).
//         Paced, it is a supervisor that runs a check now and then.
//
// Prints "ready" once the Supervisor runs.

#include "scenario.h"

#include <sys/wait.h>
#include <unistd.h>

static char self[4096];
static long rate;
static unsigned long children;

// run_child starts one child and waits for it to exit.
__attribute__((noinline)) static void run_child(void)
{
	pid_t pid = fork();
	int status;

	if (pid < 0) {
		perror("fork");
		return;
	}
	if (pid == 0) {
		execl(self, "churn", "--child", (char *)NULL);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	children++;
}

static void *supervisor(void *arg)
{
	struct pace pace;

	(void)arg;
	pace_init(&pace, rate);
	for (;;) {
		run_child();
		pace_done(&pace);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	ssize_t n;
	pthread_t t;

	if (argc > 1 && strcmp(argv[1], "--child") == 0)
		return 0;
	rate = arg_rate(argc, argv, 1);
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0 || n == (ssize_t)sizeof(self) - 1) {
		perror("readlink /proc/self/exe");
		return 1;
	}
	self[n] = '\0';
	t = start_named("Supervisor", supervisor, NULL);
	ready();
	pthread_join(t, NULL);
	return 0;
}
