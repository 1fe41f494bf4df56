/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The walk of a thread's Python frame chain, from its thread state, shared
 * by the programs that read chains: pyframes.bpf.c at each sample, and the
 * syscall tracer (internal/syscalls/ebpf/bpf/syscalls.bpf.c) at each call
 * whose stack it takes. User space does the rest of the work on the raw
 * chain (package python): which frames are shims or entries, the
 * instruction offsets, the loop check, the names.
 *
 * The walk only reads; a read that fails (an unmapped address, a page not
 * present, which a program that cannot sleep cannot fault in) ends it and
 * is flagged.
 */
#ifndef CPUWHY_PYWALK_H
#define CPUWHY_PYWALK_H

/* Frames walked: user space names at most PY_MAX_PYTHON Python frames, and
 * on 3.12+ a shim frame between calls of the eval loop is walked too: the
 * walk stops after PY_MAX_PYTHON + 1 frames before 3.12 (user space then
 * knows the chain was cut), PY_MAX_STEPS on 3.12+. */
#define PY_MAX_STEPS 256
#define PY_MAX_PYTHON 128
/* Bytes of a frame read: the fields used are below this. */
#define PY_FRAME_BUF 128

/* py_record.flags */
#define PY_CHAIN_MORE 1  /* the chain goes on past PY_MAX_STEPS frames */
#define PY_CHAIN_FAULT 2 /* a read failed: the frames are those before it */
#define PY_CHAIN_MOVED 4 /* the thread state is another thread's now */

/* Where the walk finds what it reads, by offset, for the interpreter's
 * minor version (python.Layout); -1 for a field the version lacks. Set by
 * user space before loading, as read-only data: the verifier knows the
 * values. */
struct py_layout {
	__s32 thread_frame;     /* frame, cframe or current_frame of the thread state */
	__s32 cframe_current;   /* current_frame of _PyCFrame (3.11-3.12); -1 */
	__s32 thread_native_id; /* native_thread_id (3.11+); -1 */
	__s32 frame_back;
	__s32 frame_code;
	__s32 frame_instr;     /* f_lasti (an int), prev_instr, instr_ptr */
	__s32 frame_owner;     /* a char (3.11+); -1 */
	__s32 frame_is_entry;  /* a bool (3.11); -1 */
	__s32 owned_by_cstack; /* owner of a shim frame (3.12+); -1 */
	__u32 frame_read;      /* bytes read of a frame, at most PY_FRAME_BUF */
	/* The address of the GIL's last_holder (a PyThreadState *), whose
	 * locked (an int) is 8 bytes on in every version; 0: not read. */
	__u64 gil;
};

/* What user space knows of a thread: its thread state, and the
 * native_thread_id that must still be in it (0: not checked). */
struct py_thread {
	__u64 tstate;
	__u64 native;
};

struct py_frame {
	__u64 addr;
	__u64 code;
	__u64 instr;
	__u8 owner;
	__u8 is_entry;
	__u8 pad[6];
};

/* A chain, innermost first: what pyframes.bpf.c sends at each sample (the
 * first n frames of it), and what the syscall tracer keeps per distinct
 * chain. ebpf.ParseChain reads it. */
struct py_record {
	__u64 time; /* bpf_ktime_get_ns: CLOCK_MONOTONIC, the samples' clock */
	__u32 tid;  /* the host's */
	__u16 n;    /* frames */
	__u16 flags;
	/* The GIL at the walk, when gil_read: its last holder, and locked. */
	__u64 gil_holder;
	__s32 gil_locked;
	__u32 gil_read;
	struct py_frame frames[PY_MAX_STEPS];
};

struct py_gil {
	__u64 holder;
	__s32 locked;
	__u32 pad;
};

static __always_inline __u64 py_field64(const __u8 *buf, __s32 off)
{
	if (off < 0 || off > PY_FRAME_BUF - 8)
		return 0;
	return *(const __u64 *)(buf + off);
}

static __always_inline __u8 py_field8(const __u8 *buf, __s32 off)
{
	if (off < 0 || off > PY_FRAME_BUF - 1)
		return 0;
	return buf[off];
}

static __always_inline int py_read_ptr(__u64 *dst, __u64 addr)
{
	return bpf_probe_read_user(dst, sizeof(*dst), (const void *)addr);
}

/* py_walk fills r with the chain of the thread t of the current task,
 * stamped now. L is the program's read-only layout. */
static __always_inline void py_walk(const volatile struct py_layout *L, const struct py_thread *t, __u32 tid,
				    struct py_record *r)
{
	r->time = bpf_ktime_get_ns();
	r->tid = tid;
	r->n = 0;
	r->flags = 0;
	r->gil_holder = 0;
	r->gil_locked = 0;
	r->gil_read = 0;
	if (L->gil != 0) {
		struct py_gil g;
		if (bpf_probe_read_user(&g, sizeof(g), (const void *)L->gil) == 0) {
			r->gil_holder = g.holder;
			r->gil_locked = g.locked;
			r->gil_read = 1;
		}
	}

	__u64 ts = t->tstate, f = 0;
	if (L->thread_native_id >= 0 && t->native != 0) {
		__u64 native = 0;
		if (py_read_ptr(&native, ts + L->thread_native_id) != 0)
			r->flags |= PY_CHAIN_FAULT;
		else if (native != t->native)
			r->flags |= PY_CHAIN_MOVED;
	}
	if (r->flags == 0 && py_read_ptr(&f, ts + L->thread_frame) != 0)
		r->flags |= PY_CHAIN_FAULT;
	if (r->flags == 0 && L->cframe_current >= 0 && f != 0 && py_read_ptr(&f, f + L->cframe_current) != 0)
		r->flags |= PY_CHAIN_FAULT;

	/* Versions without shim frames (before 3.12) have every frame
	 * counted: PY_MAX_PYTHON + 1 of them say the chain is cut. Counting
	 * the frames that are not shims instead, a branch at each, would have
	 * the verifier follow twice the paths at each iteration. */
	__u32 steps = L->owned_by_cstack < 0 ? PY_MAX_PYTHON + 1 : PY_MAX_STEPS;
	__u8 buf[PY_FRAME_BUF];
	__u32 size = L->frame_read;
	if (size > PY_FRAME_BUF)
		size = PY_FRAME_BUF;
	__u32 n = 0;
#pragma clang loop unroll(disable)
	for (int i = 0; i < PY_MAX_STEPS; i++) {
		if (r->flags != 0 || f == 0 || i >= steps)
			break;
		if (bpf_probe_read_user(buf, size, (const void *)f) != 0) {
			r->flags |= PY_CHAIN_FAULT;
			break;
		}
		struct py_frame *fr = &r->frames[n & (PY_MAX_STEPS - 1)];
		fr->addr = f;
		fr->code = py_field64(buf, L->frame_code);
		fr->instr = py_field64(buf, L->frame_instr);
		fr->owner = py_field8(buf, L->frame_owner);
		fr->is_entry = py_field8(buf, L->frame_is_entry);
		n++;
		f = py_field64(buf, L->frame_back);
	}
	if (r->flags == 0 && f != 0)
		r->flags |= PY_CHAIN_MORE;
	r->n = n;
}

/* py_record_len is the bytes of r that hold its n frames. */
static __always_inline __u64 py_record_len(const struct py_record *r)
{
	__u64 len = sizeof(*r) - sizeof(r->frames) + (__u64)r->n * sizeof(struct py_frame);
	if (len > sizeof(*r))
		len = sizeof(*r);
	return len;
}

#endif
