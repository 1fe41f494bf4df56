// Package ebpf reads a Python thread's frame chain in the kernel, at the
// moment a sample is taken, for package python.
//
// A perf_event program (bpf/pyframes.bpf.c) is attached to each of the
// sampler's perf events (PERF_EVENT_IOC_SET_BPF: the program runs in the
// interrupt that takes the sample, before the kernel writes it, and lets
// it be written). For a thread whose PyThreadState user space gave it
// (SetThreads), it walks the frames from the thread state with
// bpf_probe_read_user and sends the raw chain, with the thread's id and
// the time, into a BPF ring buffer: the frames' addresses, code objects,
// instruction fields and owner bytes, at most MaxSteps of them. It
// interprets nothing: package python decides which frames are shims or
// entries, checks for loops and names the code objects, from its own
// reads, as for chains it reads itself. The chain is exactly the one of
// the sample; only what the code objects say is read later, and a code
// object does not change while it lives.
//
// With the chain goes the GIL's state at the walk (Layout.GIL: its
// last_holder and locked), for package python to count who held it.
//
// The walk itself (bpf/pywalk.h: py_walk, struct py_layout and struct
// py_record) is shared: the syscall tracer (internal/syscalls/ebpf) links
// it into its sys_enter program to read the chain of each call whose
// stack it takes, with the same layout (Layout.Value) and records
// (ParseChain, RecordSize).
//
// Nothing wakes user space for a chain (BPF_RB_NO_WAKEUP): Read drains
// the ring when package python names a sample, after the sampler was
// woken for the samples themselves.
//
// Limits: the program reads only memory present in RAM (the interrupt
// cannot fault a page in): a frame on a page swapped out ends the chain,
// flagged Fault, and the sample is named by a read of the live chain as
// before. 4096 threads; chains the ring buffer has no room for are
// counted (Full) and left to the same fallback.
//
// Errors: Load returns an error matching os.ErrPermission without the
// privileges (CAP_BPF and CAP_PERFMON), and one matching ErrNotSupported
// when the kernel does not allow the program (no BPF ring buffer, Linux
// 5.8; a verifier that refuses it); the caller reads chains itself.
//
// The program is compiled by bpf2go with Debian 12's clang-14 for amd64
// and arm64; the objects and their Go wrappers are committed. Run gen.sh
// after changing the C source.
package ebpf

//go:generate go tool bpf2go -cc clang-14 -strip llvm-strip-14 -target amd64,arm64 pyframes bpf/pyframes.bpf.c -- -O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu
