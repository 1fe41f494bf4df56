// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Per-thread, per-syscall, per-result, per-fd counts of one process's
 * system calls, aggregated in the kernel, with the duration of a sample of
 * them and, when asked, the user stacks they were made from.
 *
 * Counting is folded per CPU first: a busy loop makes the same call with
 * the same result on the same fd millions of times a second, and each of
 * them looking its key up in the hash (hashing 20 bytes, walking a bucket)
 * was most of what cpuwhy added to the hook's own cost. sys_exit keeps the
 * last key it counted on each CPU, with the count and bytes not yet added
 * to stats: a call with that key adds there, in a per-CPU array slot that
 * needs no lookup by key; another key first adds the pending count to
 * stats (one lookup, once per run of a key), then counts itself in stats
 * as before. User space adds what is pending in each CPU's slot when it
 * reads the profile, after detaching. Timed calls are always counted in
 * stats.
 *
 * Both programs run on EVERY system call of the host while attached, so
 * the first thing each does is drop calls of other processes, and the
 * path a call of the target takes when it is not sampled is kept short:
 * sys_exit loads two registers, looks up one array and one per-CPU hash
 * and increments a counter in place.
 *
 * They are BTF-typed raw tracepoints (tp_btf, Linux 5.5): ctx[0] is the
 * struct pt_regs of the call, ctx[1] the syscall number (sys_enter) or
 * the return value (sys_exit). They need no trampoline, unlike fentry.
 *
 * The user side (tracer.go) sets the rodata below before loading, and
 * sizes the maps: it reads them once, after detaching.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include "syscalls.h"
/* The Python walker of package python/ebpf, linked in: a sampled call's
 * stack carries its thread's Python frame chain. */
#include "../../../stack/python/ebpf/bpf/pywalk.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define HIST_BUCKETS 40   /* syscalls.HistBuckets */
#define MAX_ERRNO 4095    /* include/linux/err.h: -4095..-1 are errors */
#define NO_FD -1          /* syscalls.NoFD */
/* key.err of a call that succeeded and returned 0: nothing read, no event
 * ready, a timeout. A bug that spins on "nothing" shows there, where a
 * server doing work returns counts. Above every errno. */
#define RET_ZERO 0x10000  /* ebpf.retZero */

/* Indexes of the dropped counters. */
#define DROP_STATS 0      /* calls not counted: stats was full */
#define DROP_STACK_KEYS 1 /* stacks not counted: stack_counts was full */
#define DROP_STACK_WALK 2 /* stacks not recorded: bpf_get_stackid failed */
#define DROP_PY_WALK 3    /* Python chains not read: a read failed, or the thread state moved */
#define DROP_PY_CHAINS 4  /* Python chains not kept: py_chains was full */
#define DROP_COUNTERS 5

/*
 * A timed call's entry is kept in a slot of inflight chosen by its tid:
 * the tid in the top 22 bits (Linux PIDs are below PID_MAX_LIMIT, 2^22)
 * and the low 42 bits of the entry time (73 minutes, longer than any
 * window) below, so that one 64-bit load or store reads or writes both
 * and a slot is never seen half written. Two threads of the target whose
 * tids collide in the slot index can lose each other's sample; they
 * cannot produce a wrong duration.
 */
#define INFLIGHT_SLOTS (1 << 15)
#define TS_BITS 42
#define TS_MASK ((1ULL << TS_BITS) - 1)

#define MAX_STACK_DEPTH 127 /* PERF_MAX_STACK_DEPTH */

/* The process traced. Not a load-time constant: a tracer that keeps its
 * programs loaded across traces (Tracer.Keep, the agent's) sets it before
 * each attach, through the memory-mapped .bss. Reading it is one load from
 * the map's value at an address fixed at load time (no helper, no lookup),
 * where a constant was an immediate. */
volatile __u32 target_tgid = 0;
/* Time one call in time_every, at random (0: none). */
const volatile __u32 time_every = 0;
/* Record the user stack of each sampled call. */
const volatile __u8 want_stacks = 0;
/* Read the Python frame chain of each sampled call's thread with its
 * stack (want_stacks), from the thread states user space puts in
 * py_threads, at the offsets of py_layout: set when the target runs a
 * CPython cpuwhy knows. Off, the verifier prunes the walk. */
const volatile __u8 want_python = 0;
const volatile struct py_layout py_layout = {};
/* The number of futex on this architecture: its calls are told apart by
 * their operation (~0: none is). */
const volatile __u32 futex_nr = ~0U;

/* FUTEX_CMD_MASK of include/uapi/linux/futex.h: the operation without the
 * PRIVATE and CLOCK_REALTIME flags. */
#define FUTEX_CMD_MASK (~(128U | 256U))

struct key {
	__u32 tid;
	__u32 nr;
	__u32 err; /* 0 for success, RET_ZERO for a success returning 0, else the positive errno */
	__s32 fd;  /* NO_FD unless the syscall takes an fd first */
	/* futex: its operation plus 1 (FUTEX_WAKE, which returns how many it
	 * woke, is 2); 0 for the other syscalls. A WAKE returning 0 woke
	 * nobody, a WAIT returning 0 was woken: only the op tells them apart. */
	__u32 op;
};

struct stat {
	__u64 count;
	__u64 timed;
	__u64 total_ns;
	__u64 hist[HIST_BUCKETS];
	/* Sum of the positive return values: the bytes moved, for the
	 * read and write calls (what a write flood's size is judged by). */
	__u64 ret_sum;
};

struct stack_key {
	__u32 tid;
	__u32 nr;
	__s64 stack_id;
	/* The key in py_chains of the thread's Python frame chain at the
	 * call, 0 for none: a frame-pointer walk stops inside the
	 * interpreter's C frames, so the same native stack comes from every
	 * Python caller of a function, which only the chain tells apart. */
	__u64 py;
};

/*
 * Frame pointers miss the caller of the innermost function when that
 * function keeps no frame, as syscall wrappers do, and everything when the
 * code has none. The first sample of a stack keeps the words at the top of
 * its user stack (x86_64) or its link register (arm64); the user side
 * takes the first that is a return address into code as the caller.
 */
#define SCAN_WORDS 16

struct stack_value {
	__u64 count;
	__u64 scan[SCAN_WORDS];
};

/*
 * Not preallocated: a preallocated per-CPU hash reserves max_entries
 * values on every CPU at load (16384 keys of 344 bytes on 64 CPUs is
 * 360 MB), where a real process uses a few hundred keys. Allocating on a
 * new key is fine in a raw tracepoint program.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 16384); /* Options.MaxKeys, set at load */
	__type(key, struct key);
	__type(value, struct stat);
} stats SEC(".maps");

/*
 * Where a call goes when stats cannot take its key: stats is not
 * preallocated, and the kernel's allocator for it runs dry in a burst of
 * new keys (a thread going round 2,000 sockets for the first time lost
 * between 11 and 49,000 calls). spill is preallocated, as big as stats
 * (Options.MaxKeys), and one value for all CPUs (a count and the bytes, 16
 * bytes, updated atomically): about 90 bytes a key, 1.4 MiB at the
 * default size, whatever the number of CPUs. So a call is lost only when
 * both are full, which takes more keys than MaxKeys: then it is counted in
 * dropped. Calls counted here are not timed.
 */
struct spilled {
	__u64 count;
	__u64 ret_sum;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384); /* Options.MaxKeys, set at load */
	__type(key, struct key);
	__type(value, struct spilled);
} spill SEC(".maps");

/*
 * The name of each thread, taken when its first key is inserted (so once
 * per thread and key, never per call): threads that start and end inside
 * the window are gone from /proc when user space reads the profile.
 */
struct comm {
	char name[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, struct comm);
} comms SEC(".maps");

/* fd_syscalls[nr] != 0 when syscall nr takes an fd as its first argument. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 512); /* sysno.Max, set at load */
	__type(key, __u32);
	__type(value, __u8);
} fd_syscalls SEC(".maps");

/* The last key counted on this CPU, and what is not yet in stats. */
struct last {
	struct key key;
	__u32 valid; /* key holds a key (count may still be 0) */
	__u64 count;
	__u64 ret_sum;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct last);
} last_key SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DROP_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} dropped SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, INFLIGHT_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} inflight SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 4096);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, MAX_STACK_DEPTH * sizeof(__u64));
} stacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct stack_key);
	__type(value, struct stack_value);
} stack_counts SEC(".maps");

/*
 * The Python side. py_threads is what the walk needs of each thread
 * (python.maxThreads of them); py_chains keeps each distinct chain once,
 * under a hash of its frames (code objects and instructions, not frame
 * addresses, which a function called again may change), and stack_counts
 * counts under that hash: a chain is walked at each sampled call, but
 * copied only the first time it is seen. Not preallocated: 8 KiB a chain,
 * allocated as distinct chains come, at most PY_CHAINS (8 MiB); a chain
 * that finds the table full is counted in dropped and its stack without
 * one. Two chains whose 64-bit hashes collide share the first one's
 * frames.
 */
#define PY_CHAINS 1024

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096); /* python.maxThreads; 1 when off */
	__type(key, __u32);
	__type(value, struct py_thread);
} py_threads SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct py_record);
} py_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, PY_CHAINS); /* 1 when off */
	__type(key, __u64);
	__type(value, struct py_record);
} py_chains SEC(".maps");

static __always_inline void drop(__u32 what, __u64 n)
{
	__u64 *c = bpf_map_lookup_elem(&dropped, &what);

	if (c)
		*c += n;
}

/* floor(log2(v)), capped at HIST_BUCKETS-1; 0 for 0 (syscalls.Bucket). */
static __always_inline __u32 bucket(__u64 v)
{
	__u32 r = 0;

	if (v >> 32) { v >>= 32; r += 32; }
	if (v >> 16) { v >>= 16; r += 16; }
	if (v >> 8) { v >>= 8; r += 8; }
	if (v >> 4) { v >>= 4; r += 4; }
	if (v >> 2) { v >>= 2; r += 2; }
	if (v >> 1) { r += 1; }
	return r < HIST_BUCKETS ? r : HIST_BUCKETS - 1;
}

/* The key in py_chains of the Python frame chain of thread tid, kept
 * there if new; 0 when it has none (not a Python thread user space knows,
 * a read that failed, a table full). */
static __always_inline __u64 python_chain(__u32 tid)
{
	struct py_thread *t = bpf_map_lookup_elem(&py_threads, &tid);
	__u32 zero = 0;
	struct py_record *r;
	__u64 h = 14695981039346656037ULL; /* FNV-1a's basis, mixed by words */

	if (!t)
		return 0;
	r = bpf_map_lookup_elem(&py_scratch, &zero);
	if (!r)
		return 0;
	py_walk(&py_layout, t, tid, r);
	if (r->flags & (PY_CHAIN_FAULT | PY_CHAIN_MOVED)) {
		drop(DROP_PY_WALK, 1);
		return 0;
	}
	if (r->n == 0)
		return 0; /* no Python running: nothing to add */
#pragma clang loop unroll(disable)
	for (int i = 0; i < PY_MAX_STEPS; i++) {
		if (i >= r->n)
			break;
		struct py_frame *f = &r->frames[i & (PY_MAX_STEPS - 1)];
		h = (h ^ f->code) * 1099511628211ULL;
		h = (h ^ f->instr) * 1099511628211ULL;
		h = (h ^ ((__u64)f->owner << 8 | f->is_entry)) * 1099511628211ULL;
	}
	h = (h ^ ((__u64)r->flags << 16 | r->n)) * 1099511628211ULL;
	if (h == 0)
		h = 1;
	r->time = 0; /* one record for every call with this chain */
	if (!bpf_map_lookup_elem(&py_chains, &h) &&
	    bpf_map_update_elem(&py_chains, &h, r, BPF_NOEXIST) &&
	    !bpf_map_lookup_elem(&py_chains, &h)) {
		drop(DROP_PY_CHAINS, 1);
		return 0;
	}
	return h;
}

/*
 * State of the sampling generator: a global, so updated racily by every
 * CPU. Sampling needs no good randomness, only none of the regularity a
 * thread's alternating calls could fall into step with, and an xorshift
 * in registers costs a fraction of a bpf_get_prandom_u32 helper call on a
 * path every call of the target takes (measured: the target kept about 80%
 * of its rate with the helper).
 */
__u32 sample_state = 2463534242;

/* Whether this call of the target is in the sample. */
static __always_inline int sampled(void)
{
	__u32 x;

	if (time_every <= 1)
		return 1;
	x = sample_state;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	sample_state = x;
	return x % time_every == 0;
}

/* Counts n calls of k, with ret_sum bytes, in spill; or, when it is full
 * too, in dropped. own says k is the current thread's: a new entry then
 * takes its name, as a new key of stats does. */
static __always_inline void spill_add(const struct key *k, __u64 n, __u64 ret_sum, int own)
{
	struct spilled *v = bpf_map_lookup_elem(&spill, k);

	if (!v) {
		struct spilled zero = {};

		bpf_map_update_elem(&spill, k, &zero, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&spill, k);
		if (v && own) {
			struct comm c;

			if (bpf_get_current_comm(&c.name, sizeof(c.name)) == 0)
				bpf_map_update_elem(&comms, &k->tid, &c, BPF_ANY);
		}
	}
	if (!v) {
		drop(DROP_STATS, n);
		return;
	}
	__sync_fetch_and_add(&v->count, n);
	if (ret_sum)
		__sync_fetch_and_add(&v->ret_sum, ret_sum);
}

static __always_inline int same_key(const struct key *a, const struct key *b)
{
	return a->tid == b->tid && a->nr == b->nr && a->err == b->err &&
	       a->fd == b->fd && a->op == b->op;
}

/* The stats entry of k, made if missing; NULL when the table is full. */
static __always_inline struct stat *lookup_or_insert(const struct key *k)
{
	struct stat *s = bpf_map_lookup_elem(&stats, k);

	if (!s) {
		struct stat zero = {};

		bpf_map_update_elem(&stats, k, &zero, BPF_NOEXIST);
		s = bpf_map_lookup_elem(&stats, k);
	}
	return s;
}

SEC("tp_btf/sys_enter")
int sys_enter(unsigned long long *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;

	if ((__u32)(id >> 32) != target_tgid)
		return 0;
	/* Random rather than every Nth call: a thread that alternates
	 * between syscalls would otherwise have only one of them timed. */
	if (!sampled())
		return 0;

	if (want_stacks) {
		struct stack_key sk = {
			.tid = tid,
			.nr = (__u32)ctx[1],
		};
		struct stack_value *v;

		sk.stack_id = bpf_get_stackid(ctx, &stacks, BPF_F_USER_STACK);
		if (want_python && sk.stack_id >= 0)
			sk.py = python_chain(tid);
		if (sk.stack_id < 0) {
			drop(DROP_STACK_WALK, 1);
		} else if ((v = bpf_map_lookup_elem(&stack_counts, &sk))) {
			__sync_fetch_and_add(&v->count, 1);
		} else {
			struct stack_value first = {.count = 1};

			caller_candidates((struct pt_regs *)ctx[0], first.scan, sizeof(first.scan));
			if (bpf_map_update_elem(&stack_counts, &sk, &first, BPF_NOEXIST)) {
				/* Lost a race for a new key, or the table is full. */
				v = bpf_map_lookup_elem(&stack_counts, &sk);
				if (v)
					__sync_fetch_and_add(&v->count, 1);
				else
					drop(DROP_STACK_KEYS, 1);
			}
		}
	}

	if (time_every) {
		/* Taken last, so that the stack walk is not in the duration. */
		__u32 slot = tid & (INFLIGHT_SLOTS - 1);
		__u64 *entry = bpf_map_lookup_elem(&inflight, &slot);

		if (entry)
			*entry = ((__u64)tid << TS_BITS) | (bpf_ktime_get_ns() & TS_MASK);
	}
	return 0;
}

SEC("tp_btf/sys_exit")
int sys_exit(unsigned long long *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct pt_regs *regs;
	struct stat *s;
	__u64 dur = 0;
	int timed = 0;
	long ret, nr;
	__u8 *takes_fd;

	if ((__u32)(id >> 32) != target_tgid)
		return 0;

	regs = (struct pt_regs *)ctx[0];
	ret = (long)ctx[1];
	nr = SYSCALL_NR(regs);
	if (nr < 0) /* not a system call: a signal return restarting one */
		return 0;

	struct key k = {
		.tid = (__u32)id,
		.nr = (__u32)nr,
		.err = (ret < 0 && ret >= -MAX_ERRNO) ? (__u32)-ret : (ret == 0 ? RET_ZERO : 0),
		.fd = NO_FD,
	};
	if (k.nr == futex_nr)
		k.op = ((__u32)SYSCALL_ARG2(regs) & FUTEX_CMD_MASK) + 1;
	takes_fd = bpf_map_lookup_elem(&fd_syscalls, &k.nr);
	if (takes_fd && *takes_fd)
		k.fd = (__s32)SYSCALL_ARG1(regs);

	if (time_every) {
		__u32 slot = k.tid & (INFLIGHT_SLOTS - 1);
		__u64 *entry = bpf_map_lookup_elem(&inflight, &slot);

		if (entry && *entry >> TS_BITS == k.tid) {
			dur = (bpf_ktime_get_ns() - *entry) & TS_MASK;
			*entry = 0;
			timed = 1;
		}
	}

	/* Per-CPU values, and the program does not nest on one CPU (the
	 * kernel skips a nested run and counts it as a recursion miss), so
	 * plain increments and stores are safe, here and below. */
	__u32 zero_idx = 0;
	struct last *l = bpf_map_lookup_elem(&last_key, &zero_idx);

	if (l && !timed && l->valid && same_key(&l->key, &k)) {
		l->count++;
		if (ret > 0)
			l->ret_sum += ret;
		return 0;
	}
	if (l && l->count) {
		/* Another key: what the last one has pending goes to stats
		 * first. Its entry is there unless the sweeper moved it out
		 * (its thread exited), or the table filled up since. */
		s = lookup_or_insert(&l->key);
		if (s) {
			s->count += l->count;
			s->ret_sum += l->ret_sum;
		} else {
			spill_add(&l->key, l->count, l->ret_sum, 0);
		}
		l->count = 0;
		l->ret_sum = 0;
	}

	/* A key's first call of a run is counted in stats, as every call
	 * was before the slot: a thread going round many fds pays one
	 * lookup a call, as it did, and its new keys are inserted (and its
	 * name taken) from its own context. */
	s = bpf_map_lookup_elem(&stats, &k);
	if (!s) {
		struct stat zero = {};

		/* Whoever wins a race to insert the key, it is there
		 * afterwards, unless the table is full. */
		bpf_map_update_elem(&stats, &k, &zero, BPF_NOEXIST);
		s = bpf_map_lookup_elem(&stats, &k);
		if (!s) {
			spill_add(&k, 1, ret > 0 ? ret : 0, 1);
			return 0;
		}
		struct comm c;

		if (bpf_get_current_comm(&c.name, sizeof(c.name)) == 0)
			bpf_map_update_elem(&comms, &k.tid, &c, BPF_ANY);
	}
	s->count++;
	if (ret > 0)
		s->ret_sum += ret;
	if (timed) {
		s->timed++;
		s->total_ns += dur;
		s->hist[bucket(dur)]++;
	}
	if (l) {
		l->key = k;
		l->valid = 1;
	}
	return 0;
}
