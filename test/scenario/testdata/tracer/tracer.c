// tracer: another tracer holding a process, as strace -p or gdb would, so
// that a dump finds every thread already traced. It attaches to every
// thread of PID with PTRACE_SEIZE, which does not stop them, and stays
// attached until it is killed (the kernel then detaches), passing on any
// signal its tracees receive so that they run as if untraced.
//
// Usage: tracer PID
//
// Prints "ready" once every thread listed in /proc/PID/task is seized;
// threads started later are not traced.

#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ptrace.h>
#include <sys/wait.h>

int main(int argc, char **argv)
{
	char path[64];
	DIR *dir;
	struct dirent *e;

	if (argc != 2) {
		fprintf(stderr, "usage: tracer PID\n");
		return 2;
	}
	snprintf(path, sizeof(path), "/proc/%s/task", argv[1]);
	dir = opendir(path);
	if (dir == NULL) {
		perror(path);
		return 1;
	}
	while ((e = readdir(dir)) != NULL) {
		pid_t tid = atoi(e->d_name);

		if (tid <= 0)
			continue;
		if (ptrace(PTRACE_SEIZE, tid, NULL, NULL) != 0) {
			perror("PTRACE_SEIZE");
			return 1;
		}
	}
	closedir(dir);
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		int st;
		pid_t tid = waitpid(-1, &st, __WALL);

		if (tid < 0) {
			if (errno == EINTR)
				continue;
			return 0; // ECHILD: every tracee is gone
		}
		if (!WIFSTOPPED(st))
			continue;
		if (st >> 16 == PTRACE_EVENT_STOP)
			ptrace(PTRACE_LISTEN, tid, NULL, NULL); // a group-stop
		else
			ptrace(PTRACE_CONT, tid, NULL, (void *)(long)WSTOPSIG(st));
	}
}
