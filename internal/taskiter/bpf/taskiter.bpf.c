// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * One record per user task (thread) of the host, written to the
 * iterator's seq_file: what /proc/TID/stat and /proc/TID/syscall give a
 * thread view, for all of them in one read() instead of two files each.
 * Kernel threads are left out. The user side (taskiter.go) turns the raw
 * kernel values into /proc's (state letter, clock ticks).
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

struct prev_cputime {
	__u64 utime;
	__u64 stime;
} __attribute__((preserve_access_index));

struct sched_entity {
	__u64 sum_exec_runtime;
} __attribute__((preserve_access_index));

struct task_struct {
	unsigned int __state;
	int exit_state;
	unsigned int flags;
	int pid;
	int tgid;
	struct task_struct *real_parent;
	struct task_struct *group_leader;
	__u64 utime;
	__u64 stime;
	struct prev_cputime prev_cputime;
	struct sched_entity se;
	__u64 start_boottime;
	char comm[16];
} __attribute__((preserve_access_index));

struct bpf_iter__task {
	struct bpf_iter_meta *meta;
	struct task_struct *task;
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
#error "taskiter.bpf.c supports __TARGET_ARCH_x86 and __TARGET_ARCH_arm64"
#endif

/* One task; taskiter.go's record mirrors it (checked by a test). */
struct task_rec {
	__u32 tgid;
	__u32 pid;
	__u32 ppid;
	__u32 flags;
	__u32 state;      /* __state */
	__u32 exit_state;
	__u64 utime;      /* ns, sampled at ticks */
	__u64 stime;
	__u64 rtime;      /* se.sum_exec_runtime, ns */
	__u64 prev_utime; /* what /proc last reported, ns (cputime_adjust) */
	__u64 prev_stime;
	__u64 start_ns;   /* start_boottime */
	__s64 syscall_nr; /* the call it is in; -1 outside one */
	char comm[16];
};

SEC("iter/task")
int dump_task(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *t = ctx->task;
	struct task_rec r = {};

	if (!t)
		return 0;
	r.flags = t->flags;
	if (r.flags & PF_KTHREAD)
		return 0;
	r.tgid = t->tgid;
	r.pid = t->pid;
	r.ppid = BPF_CORE_READ(t, real_parent, tgid);
	r.state = t->__state;
	r.exit_state = t->exit_state;
	r.utime = t->utime;
	r.stime = t->stime;
	r.rtime = t->se.sum_exec_runtime;
	r.prev_utime = t->prev_cputime.utime;
	r.prev_stime = t->prev_cputime.stime;
	r.start_ns = t->start_boottime;
	__builtin_memcpy(r.comm, t->comm, sizeof(r.comm));
	r.syscall_nr = -1;
	/* Where a sleeping task sleeps, as /proc/TID/syscall says; a
	 * running one's registers are changing under us. */
	if (r.state != 0) {
		struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(t);

		if (regs)
			r.syscall_nr = SYSCALL_NR(regs);
	}
	bpf_seq_write(seq, &r, sizeof(r));
	return 0;
}
