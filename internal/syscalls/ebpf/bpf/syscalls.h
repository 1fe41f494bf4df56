/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The few kernel types syscalls.bpf.c reads, declared by hand instead of
 * a generated vmlinux.h (several megabytes, and tied to one kernel). The
 * structs are marked preserve_access_index, so the loader relocates every
 * field access against the running kernel's BTF (CO-RE): only the names
 * and the C types of the fields must match the kernel, not the layout.
 *
 * The programs are BTF-typed tracepoints (tp_btf), so the verifier knows
 * the regs argument as the kernel's struct pt_regs and SYSCALL_NR and
 * SYSCALL_ARG1 are plain loads it checks, not bpf_probe_read_kernel
 * calls: on the busypoll scenario that alone took the traced rate from
 * about 78% of the untraced one to about 87%.
 */
#ifndef CPUWHY_SYSCALLS_H
#define CPUWHY_SYSCALLS_H

#if defined(__TARGET_ARCH_x86)
/* arch/x86/include/asm/ptrace.h */
struct pt_regs {
	unsigned long di;
	unsigned long si;
	unsigned long orig_ax;
	unsigned long sp;
} __attribute__((preserve_access_index));

/* On x86_64 the argument registers survive the call: di and si still hold
 * the first two arguments at sys_exit. */
#define SYSCALL_ARG1(regs) ((regs)->di)
#define SYSCALL_ARG2(regs) ((regs)->si)
#define SYSCALL_NR(regs) ((regs)->orig_ax)

/* The return address of a function that made the call without a frame of
 * its own is among the first words of the user stack: copy them. */
static __always_inline void caller_candidates(struct pt_regs *regs, __u64 *words, __u32 size)
{
	bpf_probe_read_user(words, size, (void *)BPF_CORE_READ(regs, sp));
}

#elif defined(__TARGET_ARCH_arm64)
/* arch/arm64/include/asm/ptrace.h */
struct pt_regs {
	__u64 regs[31];
	__u64 orig_x0;
	__s32 syscallno;
} __attribute__((preserve_access_index));

/* x0 holds the return value at sys_exit; the first argument is kept in
 * orig_x0, the second is still in x1. */
#define SYSCALL_ARG1(regs) ((regs)->orig_x0)
#define SYSCALL_ARG2(regs) ((regs)->regs[1])
#define SYSCALL_NR(regs) ((regs)->syscallno)

/* The link register holds the return address of a function that made the
 * call without saving it in a frame record. */
static __always_inline void caller_candidates(struct pt_regs *regs, __u64 *words, __u32 size)
{
	words[0] = BPF_CORE_READ(regs, regs[30]);
}

#else
#error "syscalls.bpf.c supports __TARGET_ARCH_x86 and __TARGET_ARCH_arm64"
#endif

#endif
