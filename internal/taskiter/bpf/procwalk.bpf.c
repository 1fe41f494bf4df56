// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The CPU of every user process of the host, added up in the kernel in
 * one run of one program: for each process (an open-coded task iterator
 * over processes, Linux 6.7) the run time of its live threads (a nested
 * iterator over its threads) plus that of its threads that have exited
 * (signal->sum_sched_runtime): what /proc/PID/stat's utime and stime add
 * up to. Where the iter/task program of procs.bpf.c costs the kernel a
 * PID lookup and a reference per thread (0.7 us each: 7 ms a listing on
 * a host of 10,000 threads), this walks the task lists under RCU.
 *
 * The records go to a global array that user space reads after the run
 * (BPF_PROG_RUN); at most MAX_PROCS, and nprocs says how many processes
 * there were, so that user space knows when some did not fit.
 *
 * The kernel types are declared by hand, marked preserve_access_index:
 * the loader relocates every field against the running kernel's BTF.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define PF_KTHREAD 0x00200000
/* procs.go's maxWalked mirrors it. */
#define MAX_PROCS 16384

struct signal_struct {
	unsigned long long sum_sched_runtime;
} __attribute__((preserve_access_index));

struct sched_entity {
	__u64 sum_exec_runtime;
} __attribute__((preserve_access_index));

struct task_struct {
	unsigned int flags;
	int tgid;
	struct task_struct *group_leader;
	struct sched_entity se;
	struct signal_struct *signal;
	__u64 start_boottime;
	char comm[16];
} __attribute__((preserve_access_index));

/* The kernel's open-coded task iterator (kernel/bpf/task_iter.c). */
struct bpf_iter_task {
	__u64 __opaque[3];
} __attribute__((aligned(8)));

extern int bpf_iter_task_new(struct bpf_iter_task *it, struct task_struct *task, unsigned int flags) __ksym;
extern struct task_struct *bpf_iter_task_next(struct bpf_iter_task *it) __ksym;
extern void bpf_iter_task_destroy(struct bpf_iter_task *it) __ksym;

enum {
	BPF_TASK_ITER_ALL_THREADS = 1,
};

/* One process; procs.go's walked mirrors it (checked by a test). */
struct proc_cpu {
	__u32 tgid;
	__u32 threads;
	__u64 rtime;    /* ns: live threads' se.sum_exec_runtime and the dead's */
	__u64 start_ns; /* start_boottime of the leader */
	char comm[16];
};

struct proc_cpu procs[MAX_PROCS];
__u32 nprocs;

SEC("raw_tp")
int walk_procs(void *ctx)
{
	struct bpf_iter_task it;
	struct task_struct *t;
	struct proc_cpu *r = NULL;
	int tgid = -1;

	/* Threads come a process at a time (for_each_process_thread): a
	 * record is begun at each process's first thread. The count is kept
	 * in nprocs, in memory, not in a register: the verifier then sees an
	 * unknown number at each turn of the loop, and its states converge,
	 * where a counter in a register would be a new state each turn. */
	nprocs = 0;
	bpf_iter_task_new(&it, NULL, BPF_TASK_ITER_ALL_THREADS);
	while ((t = bpf_iter_task_next(&it))) {
		if (t->flags & PF_KTHREAD)
			continue;
		if (t->tgid != tgid) {
			struct task_struct *leader = t->group_leader;

			__u32 n = nprocs;

			tgid = t->tgid;
			r = NULL;
			if (n < MAX_PROCS) {
				r = &procs[n];
				r->tgid = tgid;
				r->threads = 0;
				r->rtime = t->signal->sum_sched_runtime;
				r->start_ns = leader->start_boottime;
				__builtin_memcpy(r->comm, leader->comm, sizeof(r->comm));
			}
			nprocs = n + 1;
		}
		if (r) {
			r->rtime += t->se.sum_exec_runtime;
			r->threads++;
		}
	}
	bpf_iter_task_destroy(&it);
	return 0;
}
