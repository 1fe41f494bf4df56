// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Every user thread of the host, and what /proc/PID/stat adds up for
 * each process, in one run of one program (BPF_PROG_RUN): an open-coded
 * task iterator (Linux 6.7) walks the kernel's task lists under RCU,
 * where the iter/task program of taskiter.bpf.c costs a PID lookup and a
 * reference per thread (about 1 us each on this VM: 11 ms a listing of
 * 10,000 threads), and the thread view then still read each process's
 * own stat file from /proc.
 *
 * The thread records are taskiter.bpf.c's struct task_rec, so that one
 * parser reads both; the process records add up what
 * thread_group_cputime() does (the live threads' sampled times and run
 * time, and the exited threads' kept in signal_struct) and carry the
 * signal's prev_cputime, for user space to scale them as
 * cputime_adjust() does, the thread count and the RSS as get_mm_rss()
 * reads it.
 *
 * The records go to memory-mapped arrays that user space reads after the
 * run: at most MAX_THREADS and MAX_PROCS; nthreads and nprocs count all of
 * them, so that user space knows when some did not fit, and nwalked
 * every task, so that it knows whether the walk saw all of the kernel's.
 *
 * The kernel types are declared by hand, marked preserve_access_index:
 * the loader relocates every field against the running kernel's BTF.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define PF_KTHREAD 0x00200000
/* threadwalk.go's maxWalkedThreads and maxWalkedProcs mirror them. */
#define MAX_THREADS 32768
#define MAX_PROCS 8192

/* get_mm_rss(): MM_FILEPAGES, MM_ANONPAGES and MM_SHMEMPAGES. */
#define MM_FILEPAGES 0
#define MM_ANONPAGES 1
#define MM_SHMEMPAGES 3

struct prev_cputime {
	__u64 utime;
	__u64 stime;
} __attribute__((preserve_access_index));

struct sched_entity {
	__u64 sum_exec_runtime;
} __attribute__((preserve_access_index));

struct signal_struct {
	int nr_threads;
	__u64 utime;
	__u64 stime;
	unsigned long long sum_sched_runtime;
	struct prev_cputime prev_cputime;
} __attribute__((preserve_access_index));

/* Linux 6.2 and later; get_mm_counter() reads the count alone
 * (percpu_counter_read_positive), as this does. */
struct percpu_counter {
	__s64 count;
} __attribute__((preserve_access_index));

struct mm_struct {
	struct percpu_counter rss_stat[4];
} __attribute__((preserve_access_index));

struct task_struct {
	unsigned int __state;
	int exit_state;
	unsigned int flags;
	int pid;
	int tgid;
	struct task_struct *real_parent;
	struct mm_struct *mm;
	struct signal_struct *signal;
	__u64 utime;
	__u64 stime;
	struct prev_cputime prev_cputime;
	struct sched_entity se;
	__u64 start_boottime;
	char comm[16];
} __attribute__((preserve_access_index));

#if defined(__TARGET_ARCH_x86)
struct pt_regs {
	unsigned long orig_ax;
} __attribute__((preserve_access_index));
#define SYSCALL_NR(regs) ((long)BPF_CORE_READ(regs, orig_ax))
#elif defined(__TARGET_ARCH_arm64)
struct pt_regs {
	__s32 syscallno;
} __attribute__((preserve_access_index));
#define SYSCALL_NR(regs) ((long)BPF_CORE_READ(regs, syscallno))
#else
#error "threadwalk.bpf.c supports __TARGET_ARCH_x86 and __TARGET_ARCH_arm64"
#endif

struct bpf_iter_task {
	__u64 __opaque[3];
} __attribute__((aligned(8)));

extern int bpf_iter_task_new(struct bpf_iter_task *it, struct task_struct *task, unsigned int flags) __ksym;
extern struct task_struct *bpf_iter_task_next(struct bpf_iter_task *it) __ksym;
extern void bpf_iter_task_destroy(struct bpf_iter_task *it) __ksym;

enum {
	BPF_TASK_ITER_ALL_THREADS = 1,
};

/* As taskiter.bpf.c's; taskiter.go's Parse reads both. */
struct task_rec {
	__u32 tgid;
	__u32 pid;
	__u32 ppid;
	__u32 flags;
	__u32 state;
	__u32 exit_state;
	__u64 utime;
	__u64 stime;
	__u64 rtime;
	__u64 prev_utime;
	__u64 prev_stime;
	__u64 start_ns;
	__s64 syscall_nr;
	char comm[16];
};

/* One process; taskiter.go's parseGroup mirrors it (checked by a test). */
struct group_rec {
	__u32 tgid;
	__u32 nr_threads; /* signal->nr_threads */
	__u64 utime;      /* ns: live threads' and the exited's (signal) */
	__u64 stime;
	__u64 rtime;
	__u64 prev_utime; /* signal->prev_cputime */
	__u64 prev_stime;
	__s64 rss_pages;
};

/* Arrays of their own, memory-mapped by user space, rather than global
 * data: the loader writes a global's initial contents into the map, and
 * 3.4 MiB of zeroes made each load cost 60 ms of CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, MAX_THREADS);
	__type(key, __u32);
	__type(value, struct task_rec);
} threads SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, MAX_PROCS);
	__type(key, __u32);
	__type(value, struct group_rec);
} groups SEC(".maps");

__u32 nthreads;
__u32 nprocs;
/* Every task walked, kernel threads included: what the kernel's count
 * of tasks (nr_threads) is when the walk saw them all. */
__u32 nwalked;

static __s64 positive(__s64 n)
{
	return n < 0 ? 0 : n;
}

/* A constant index, so that the access is relocated with the kernel's
 * size of struct percpu_counter, not this file's. */
#define COUNTER(mm, i) positive(BPF_CORE_READ(mm, rss_stat[i].count))

SEC("raw_tp")
int walk_threads(void *ctx)
{
	struct bpf_iter_task it;
	struct task_struct *t;
	struct group_rec *g = NULL;
	int tgid = -1;

	/* The counts are kept in memory, not in registers, as procwalk.bpf.c
	 * does: the verifier then sees an unknown number at each turn of the
	 * loop, and its states converge. */
	nthreads = 0;
	nprocs = 0;
	nwalked = 0;
	bpf_iter_task_new(&it, NULL, BPF_TASK_ITER_ALL_THREADS);
	while ((t = bpf_iter_task_next(&it))) {
		unsigned int flags = t->flags;
		__u32 n;

		/* The walk begins with init_task, the first CPU's idle task
		 * (PID 0), which nr_threads does not count. */
		if (t->pid != 0)
			nwalked++;
		if (flags & PF_KTHREAD)
			continue;
		if (t->tgid != tgid) {
			/* A process's threads come together, its leader first
			 * (for_each_process_thread). */
			struct signal_struct *sig = t->signal;
			struct mm_struct *mm = t->mm;

			tgid = t->tgid;
			g = NULL;
			n = nprocs;
			g = bpf_map_lookup_elem(&groups, &n); /* NULL past MAX_PROCS */
			if (g) {
				g->tgid = tgid;
				g->nr_threads = sig->nr_threads;
				g->utime = sig->utime;
				g->stime = sig->stime;
				g->rtime = sig->sum_sched_runtime;
				g->prev_utime = sig->prev_cputime.utime;
				g->prev_stime = sig->prev_cputime.stime;
				g->rss_pages = 0;
				if (mm)
					g->rss_pages = COUNTER(mm, MM_FILEPAGES) + COUNTER(mm, MM_ANONPAGES) +
						       COUNTER(mm, MM_SHMEMPAGES);
			}
			nprocs = n + 1;
		}
		if (g) {
			g->utime += t->utime;
			g->stime += t->stime;
			g->rtime += t->se.sum_exec_runtime;
		}
		n = nthreads;
		struct task_rec *r = bpf_map_lookup_elem(&threads, &n); /* NULL past MAX_THREADS */

		if (r) {
			r->flags = flags;
			r->tgid = t->tgid;
			r->pid = t->pid;
			r->ppid = t->real_parent->tgid;
			r->state = t->__state;
			r->exit_state = t->exit_state;
			r->utime = t->utime;
			r->stime = t->stime;
			r->rtime = t->se.sum_exec_runtime;
			r->prev_utime = t->prev_cputime.utime;
			r->prev_stime = t->prev_cputime.stime;
			r->start_ns = t->start_boottime;
			__builtin_memcpy(r->comm, t->comm, sizeof(r->comm));
			r->syscall_nr = -1;
			if (r->state != 0) {
				struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(t);

				if (regs)
					r->syscall_nr = SYSCALL_NR(regs);
			}
		}
		nthreads = n + 1;
	}
	bpf_iter_task_destroy(&it);
	return 0;
}
