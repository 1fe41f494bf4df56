// jitmap: a hand-made JIT and the perf map it writes, for the perf map
// runtime's tests, inside a container as on the host. A thread named
// jitter copies a small hot loop (x86-64 machine code that keeps a frame
// pointer, as JIT code does) into anonymous memory, makes it executable,
// writes its address to /tmp/perf-PID.map, PID being what its own PID
// namespace calls it (1 as a container's first process), and calls it in
// a loop: its CPU is spent in code that no file names.
//
// The map's first line names the whole page the code is in jit_decoy; the
// second, written after it, names the code itself jit_first: overlapping
// symbols, the later one winning, as a JIT leaves them when it moves
// code. On SIGUSR1 the thread "recompiles": it copies the loop to new
// memory, appends its line (jit_second) to the map, prints "switched" and
// calls the new copy from then on, so that a reader must follow the map
// as it grows. With argv[1] = "nomap" no map is written.
//
// Prints "ready" once the map is written and the thread runs.

#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if !defined(__x86_64__)
#error "jitmap's machine code is x86-64"
#endif

// spin(n): count n down to 0 in a frame of its own.
//   push %rbp; mov %rsp,%rbp; mov %rdi,%rax
//   1: sub $1,%rax; jne 1b
//   pop %rbp; ret
static const unsigned char spin_code[] = {
	0x55, 0x48, 0x89, 0xe5, 0x48, 0x89, 0xf8,
	0x48, 0x83, 0xe8, 0x01, 0x75, 0xfa,
	0x5d, 0xc3,
};

typedef uint64_t (*spin_fn)(uint64_t);

static int map_fd = -1;
static volatile sig_atomic_t recompile;
static volatile uint64_t sink;

static void on_usr1(int sig)
{
	(void)sig;
	recompile = 1;
}

// compile copies the loop into a page of its own and names it in the map.
static spin_fn compile(const char *name, int decoy)
{
	long page = sysconf(_SC_PAGESIZE);
	unsigned char *mem = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		perror("mmap");
		_exit(1);
	}
	// Not at the start of the page: the decoy must cover more than the
	// code.
	unsigned char *code = mem + 64;
	memcpy(code, spin_code, sizeof spin_code);
	if (mprotect(mem, page, PROT_READ | PROT_EXEC) != 0) {
		perror("mprotect");
		_exit(1);
	}
	if (map_fd >= 0) {
		if (decoy)
			dprintf(map_fd, "%lx %lx jit_decoy\n", (unsigned long)mem, (unsigned long)page);
		dprintf(map_fd, "%lx %zx %s\n", (unsigned long)code, sizeof spin_code, name);
	}
	return (spin_fn)code;
}

__attribute__((noinline)) static void run_jit(spin_fn fn)
{
	for (;;) {
		if (recompile) {
			recompile = 0;
			fn = compile("jit_second", 0);
			printf("switched\n");
			fflush(stdout);
		}
		sink += fn(10 * 1000 * 1000);
	}
}

static void *jitter(void *arg)
{
	run_jit((spin_fn)arg);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "nomap") != 0) {
		char path[64];
		snprintf(path, sizeof path, "/tmp/perf-%d.map", (int)getpid());
		map_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
		if (map_fd < 0) {
			perror(path);
			return 1;
		}
	}
	signal(SIGUSR1, on_usr1);
	spin_fn fn = compile("jit_first", 1);

	// Only the jitter thread takes SIGUSR1, so that it sees the flag at
	// once.
	sigset_t usr1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_t t;
	if (pthread_create(&t, NULL, jitter, (void *)fn) != 0) {
		fprintf(stderr, "pthread_create failed\n");
		return 1;
	}
	pthread_sigmask(SIG_BLOCK, &usr1, NULL);
	pthread_setname_np(t, "jitter");
	printf("ready\n");
	fflush(stdout);
	pthread_join(t, NULL);
	return 0;
}
