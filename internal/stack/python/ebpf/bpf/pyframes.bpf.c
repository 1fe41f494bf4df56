// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The Python frame chain of the sampled thread, read at the sample.
 *
 * on_sample is attached (PERF_EVENT_IOC_SET_BPF) to the sampler's own
 * perf events, which are the target's threads' only: it runs in the
 * interrupt that takes a sample, before the kernel writes the sample to
 * the perf ring, and returns 1 so that the kernel still writes it. For a
 * thread user space has told it the PyThreadState of (threads), it walks
 * the thread's frames from the thread state (py_walk, pywalk.h, which the
 * syscall tracer links in too), and sends the raw chain (each frame's address, code object,
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

#include "pywalk.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Indexes of counters. */
#define COUNT_FULL 0 /* chains not sent: the ring buffer was full */
#define COUNTERS 1

const volatile struct py_layout L = {};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096); /* python.maxThreads */
	__type(key, __u32);
	__type(value, struct py_thread);
} threads SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct py_record);
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

SEC("perf_event")
int on_sample(struct bpf_perf_event_data *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct py_thread *t = bpf_map_lookup_elem(&threads, &tid);
	if (!t)
		return 1;
	__u32 zero = 0;
	struct py_record *r = bpf_map_lookup_elem(&scratch, &zero);
	if (!r)
		return 1;
	py_walk(&L, t, tid, r);
	if (bpf_ringbuf_output(&chains, r, py_record_len(r), BPF_RB_NO_WAKEUP) != 0) {
		__u32 k = COUNT_FULL;
		__u64 *c = bpf_map_lookup_elem(&counters, &k);
		if (c)
			*c += 1;
	}
	return 1;
}
