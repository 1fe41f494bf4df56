// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The Python frame chain of the sampled thread, read at the sample.
 *
 * on_sample is attached (PERF_EVENT_IOC_SET_BPF) to the sampler's own
 * perf events, which are the target's threads' only: it runs in the
 * interrupt that takes a sample, before the kernel writes the sample to
 * the perf ring, and returns 1 so that the kernel still writes it. For a
 * thread user space has told it the PyThreadState of (threads), it walks
 * the thread's frames from the thread state, at most MAX_STEPS of them,
 * and sends the raw chain (each frame's address, code object,
 * instruction field and owner bytes) with the time and the thread's id
 * to user space through the ring buffer chains. User space matches the
 * chain to the sample by thread and time and does all the rest: which
 * frames are shims or entries, the instruction offsets, the loop check,
 * the names. The walk only reads; a read that fails (an unmapped
 * address, a page not present, which the interrupt cannot fault in)
 * ends it and is flagged.
 *
 * The offsets are those of the interpreter's minor version, set by user
 * space before loading (layout): read-only data, which the verifier
 * knows the value of, so each access is checked against the frame
 * buffer's bounds at load.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/bpf_perf_event.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Frames walked: user space names at most MAX_PYTHON Python frames, and
 * on 3.12+ a shim frame between calls of the eval loop is walked too: the
 * walk stops after MAX_PYTHON + 1 frames before 3.12 (user space then
 * knows the chain was cut), MAX_STEPS on 3.12+. */
#define MAX_STEPS 256
#define MAX_PYTHON 128
/* Bytes of a frame read: the fields used are below this. */
#define FRAME_BUF 128

/* record.flags */
#define CHAIN_MORE 1  /* the chain goes on past MAX_STEPS frames */
#define CHAIN_FAULT 2 /* a read failed: the frames are those before it */
#define CHAIN_MOVED 4 /* the thread state is another thread's now */

/* Indexes of counters. */
#define COUNT_FULL 0 /* chains not sent: the ring buffer was full */
#define COUNTERS 1

struct layout {
	__s32 thread_frame;     /* frame, cframe or current_frame of the thread state */
	__s32 cframe_current;   /* current_frame of _PyCFrame (3.11-3.12); -1 */
	__s32 thread_native_id; /* native_thread_id (3.11+); -1 */
	__s32 frame_back;
	__s32 frame_code;
	__s32 frame_instr;    /* f_lasti (an int), prev_instr, instr_ptr */
	__s32 frame_owner;    /* a char (3.11+); -1 */
	__s32 frame_is_entry; /* a bool (3.11); -1 */
	__s32 owned_by_cstack; /* owner of a shim frame (3.12+); -1 */
	__u32 frame_read;     /* bytes read of a frame, at most FRAME_BUF */
};

const volatile struct layout L = {};

/* What user space knows of a thread: its thread state, and the
 * native_thread_id that must still be in it (0: not checked). */
struct thread {
	__u64 tstate;
	__u64 native;
};

struct frame {
	__u64 addr;
	__u64 code;
	__u64 instr;
	__u8 owner;
	__u8 is_entry;
	__u8 pad[6];
};

struct record {
	__u64 time; /* bpf_ktime_get_ns: CLOCK_MONOTONIC, the samples' clock */
	__u32 tid;  /* the host's */
	__u16 n;    /* frames */
	__u16 flags;
	struct frame frames[MAX_STEPS];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096); /* python.maxThreads */
	__type(key, __u32);
	__type(value, struct thread);
} threads SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct record);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 18); /* user space sizes it by the CPUs */
} chains SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline __u64 field64(const __u8 *buf, __s32 off)
{
	if (off < 0 || off > FRAME_BUF - 8)
		return 0;
	return *(const __u64 *)(buf + off);
}

static __always_inline __u8 field8(const __u8 *buf, __s32 off)
{
	if (off < 0 || off > FRAME_BUF - 1)
		return 0;
	return buf[off];
}

static __always_inline int read_ptr(__u64 *dst, __u64 addr)
{
	return bpf_probe_read_user(dst, sizeof(*dst), (const void *)addr);
}

SEC("perf_event")
int on_sample(struct bpf_perf_event_data *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct thread *t = bpf_map_lookup_elem(&threads, &tid);
	if (!t)
		return 1;
	__u32 zero = 0;
	struct record *r = bpf_map_lookup_elem(&scratch, &zero);
	if (!r)
		return 1;
	r->time = bpf_ktime_get_ns();
	r->tid = tid;
	r->n = 0;
	r->flags = 0;

	__u64 ts = t->tstate, f = 0;
	if (L.thread_native_id >= 0 && t->native != 0) {
		__u64 native = 0;
		if (read_ptr(&native, ts + L.thread_native_id) != 0)
			r->flags |= CHAIN_FAULT;
		else if (native != t->native)
			r->flags |= CHAIN_MOVED;
	}
	if (r->flags == 0 && read_ptr(&f, ts + L.thread_frame) != 0)
		r->flags |= CHAIN_FAULT;
	if (r->flags == 0 && L.cframe_current >= 0 && f != 0 && read_ptr(&f, f + L.cframe_current) != 0)
		r->flags |= CHAIN_FAULT;

	/* Versions without shim frames (before 3.12) have every frame
	 * counted: MAX_PYTHON + 1 of them say the chain is cut. Counting the
	 * frames that are not shims instead, a branch at each, would have the
	 * verifier follow twice the paths at each iteration. */
	__u32 steps = L.owned_by_cstack < 0 ? MAX_PYTHON + 1 : MAX_STEPS;
	__u8 buf[FRAME_BUF];
	__u32 size = L.frame_read;
	if (size > FRAME_BUF)
		size = FRAME_BUF;
	__u32 n = 0;
#pragma clang loop unroll(disable)
	for (int i = 0; i < MAX_STEPS; i++) {
		if (r->flags != 0 || f == 0 || i >= steps)
			break;
		if (bpf_probe_read_user(buf, size, (const void *)f) != 0) {
			r->flags |= CHAIN_FAULT;
			break;
		}
		struct frame *fr = &r->frames[n & (MAX_STEPS - 1)];
		fr->addr = f;
		fr->code = field64(buf, L.frame_code);
		fr->instr = field64(buf, L.frame_instr);
		fr->owner = field8(buf, L.frame_owner);
		fr->is_entry = field8(buf, L.frame_is_entry);
		n++;
		f = field64(buf, L.frame_back);
	}
	if (r->flags == 0 && f != 0)
		r->flags |= CHAIN_MORE;
	r->n = n;

	__u64 len = sizeof(*r) - sizeof(r->frames) + (__u64)n * sizeof(struct frame);
	if (len > sizeof(*r))
		len = sizeof(*r);
	if (bpf_ringbuf_output(&chains, r, len, BPF_RB_NO_WAKEUP) != 0) {
		__u32 k = COUNT_FULL;
		__u64 *c = bpf_map_lookup_elem(&counters, &k);
		if (c)
			*c += 1;
	}
	return 1;
}
