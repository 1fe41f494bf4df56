// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The run time of every user thread of the host, written to the
 * iterator's seq_file, for a watch that wants each process's CPU once a
 * second (taskiter.go's Procs): what /proc/PID/stat's utime+stime add up
 * to, for all processes in one read() instead of a directory listing and
 * a file per process. The record is small on purpose: a thread's run time
 * and start, and on the leader of each process the run time of its
 * threads that have exited (signal->sum_sched_runtime), which the live
 * threads' no longer hold. Kernel threads are left out.
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

struct seq_file;

struct bpf_iter_meta {
	struct seq_file *seq;
} __attribute__((preserve_access_index));

struct sched_entity {
	__u64 sum_exec_runtime;
} __attribute__((preserve_access_index));

struct signal_struct {
	unsigned long long sum_sched_runtime;
} __attribute__((preserve_access_index));

struct task_struct {
	unsigned int flags;
	int pid;
	int tgid;
	struct sched_entity se;
	struct signal_struct *signal;
	__u64 start_boottime;
	char comm[16];
} __attribute__((preserve_access_index));

struct bpf_iter__task {
	struct bpf_iter_meta *meta;
	struct task_struct *task;
} __attribute__((preserve_access_index));

/* One thread; procs.go's record mirrors it (checked by a test). */
struct proc_rec {
	__u32 tgid;
	__u32 pid;
	__u64 rtime;    /* se.sum_exec_runtime, ns */
	__u64 gone;     /* on the leader only: signal->sum_sched_runtime, ns */
	__u64 start_ns; /* start_boottime */
	char comm[16];
};

SEC("iter/task")
int dump_proc(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *t = ctx->task;
	struct proc_rec r = {};

	if (!t || (t->flags & PF_KTHREAD))
		return 0;
	r.tgid = t->tgid;
	r.pid = t->pid;
	r.rtime = t->se.sum_exec_runtime;
	if (r.pid == r.tgid)
		r.gone = BPF_CORE_READ(t, signal, sum_sched_runtime);
	r.start_ns = t->start_boottime;
	__builtin_memcpy(r.comm, t->comm, sizeof(r.comm));
	bpf_seq_write(seq, &r, sizeof(r));
	return 0;
}
