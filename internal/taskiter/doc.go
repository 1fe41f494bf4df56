// Package taskiter lists every user thread of the host in one read, with a
// BPF task iterator (iter/task, Linux 5.8; bpf_task_pt_regs, 5.15): per
// thread what /proc/TID/stat gives a thread view (name, state, parent,
// flags, user and system time, start time) and, for a sleeping thread,
// the system call it is in (/proc/TID/syscall). A cold thread view of a
// host with 10,000 threads read two /proc files per thread, 6 to 7 µs
// each: 158 ms of CPU; the iterator hands the kernel's own values for all
// of them through one file.
//
// On Linux 6.7 and later Iter walks the task lists instead, in one run
// of one program (BPF_PROG_RUN, open-coded task iterators,
// threadwalk.bpf.c), writing the same records to a memory-mapped array,
// and adds up each process's own /proc/PID/stat figures in the kernel
// (user and system time with its exited threads', thread count, RSS):
// Read then gives Listing.Groups, and a thread view reads no /proc file
// per process either. iter/task looks up and references each task
// (about 1 µs each here, 11 ms for 10,000 threads); the walk does not.
// The walker holds at most 32,768 threads and 8,192 processes (3.4 MiB
// of kernel memory, mapped): a host with more is read with iter/task
// from then on.
//
// The values are turned into /proc's: the state letter as the kernel's
// task_state_index makes it, user and system time scaled to the thread's
// run time and kept from going backwards as cputime_adjust does, in clock
// ticks (USER_HZ, 100). They agree with /proc's to a tick, not always
// exactly: /proc adjusts the times when it is read, and the iterator
// reads them at another instant.
//
// Procs is for a watch that wants every process's CPU once a second and
// nothing else: on Linux 6.7 and later one program run walks the task
// lists with open-coded task iterators and adds each process's threads
// up in the kernel (0.47 ms of CPU for 1,000 processes and 10,000
// threads on this VM, where a /proc scan of their stat files takes about
// 21 ms); before, an iter/task program of small per-thread records (3.6
// ms). Run times are the scheduler's, in ns, with the time of exited
// threads (signal_struct) added, as /proc/PID/stat's utime+stime.
//
// Errors: Open returns an error matching ErrNotSupported when this kernel
// or these privileges cannot load or attach the iterator (no CAP_BPF
// and CAP_PERFMON, or CAP_SYS_ADMIN; a kernel before 5.15 or without
// BTF): the caller reads /proc instead, which stays the fallback.
//
// The program is compiled by bpf2go with Debian 12's clang-14 for amd64
// and arm64; the objects and their Go wrappers are committed. Run gen.sh
// after changing a C source.
package taskiter

//go:generate go tool bpf2go -cc clang-14 -strip llvm-strip-14 -target amd64,arm64 taskiter bpf/taskiter.bpf.c -- -O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu
//go:generate go tool bpf2go -cc clang-14 -strip llvm-strip-14 -target amd64,arm64 threadwalk bpf/threadwalk.bpf.c -- -O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu
