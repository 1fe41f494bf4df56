// Package unwind walks user-space stacks from a thread's registers and a
// copy of its stack: the frames behind a perf sample taken with
// PERF_SAMPLE_REGS_USER and PERF_SAMPLE_STACK_USER, or behind a thread
// stopped with ptrace.
//
// Release builds omit frame pointers (-O2 -fomit-frame-pointer, and
// Debian's libc), so walking rbp stops at the first frame; the compilers
// still emit call frame information (CFI) for exceptions, in .eh_frame,
// and that is what the unwinder follows, as gdb, libunwind and perf
// --call-graph dwarf do.
//
// # Parts
//
//   - The CFI parser (cfi.go, eval.go) reads .eh_frame, its .eh_frame_hdr
//     search table and .debug_frame from []byte and the address each
//     section is linked at, and evaluates the CFA program of the FDE
//     covering an address into a Row: the CFA rule and one rule per
//     register. It does no I/O: ELFSections (elf.go) reads the sections
//     from a debug/elf file, which may come from a file or from a
//     process's memory (the vdso).
//   - Table indexes one object's FDEs by start address (from
//     .eh_frame_hdr when usable, else by walking .eh_frame) and parses the
//     covering FDE on each lookup, so it costs 16 bytes per FDE.
//   - Unwinder (unwind.go) walks x86-64 stacks: CFI where an FDE covers
//     the PC, frame pointers where none does. Callers are looked up at
//     their return address minus one, the call instruction, and reported
//     as the return address. The walk ends when CFI marks the return
//     address undefined (glibc's clone3 and _start do: StopOutermost),
//     at a zero return address or a zero frame pointer read from a
//     frame-pointer chain (the psABI's deepest-frame mark, where Go's
//     goroutines start), or at a return address outside executable
//     mappings, a CFA that does not move up the stack, or the end of the
//     stack copy; Trace says which.
//   - Space (space.go) builds the tables of every executable mapping of a
//     process and answers the lookups of the walk. A Cache keeps the
//     tables from one Space to the next for a long-lived process (the
//     agent's diagnoses): keyed by each file's identity (device, inode,
//     size and modification time, which a stat of the mapping gives
//     without reading the file), bounded by the bytes the tables hold,
//     least recently used first out; an object that could not be opened
//     or whose CFI could not be read is not kept, so a passing failure
//     is not remembered. Tables never change once built, so one evicted
//     stays valid for the Spaces holding it.
//
// # Own parser, not delve's
//
// delve's pkg/dwarf/frame was the alternative. Its Parse builds a struct
// per FDE of the whole section up front (3,700 for libc, per process
// object), drops read errors so truncated input decodes as zeros instead
// of failing at an offset, has no 64-bit DWARF lengths, and leaves DWARF
// expressions to delve's pkg/proc. cpuwhy reads CFI from files of
// containers it does not trust and wants errors with offsets, caps sized
// by the input, a lazy per-lookup parse, and the .plt CFA expression. The
// format is small enough that an own parser, checked row by row against
// readelf on all of libc and fuzzed, costs less than adapting delve's and
// adding its module to ours.
//
// # Limits
//
//   - Only x86-64 is unwound; Regs carries LR and Row has the arm64
//     registers for the arm64 walk to come.
//   - DWARF expressions are not evaluated, except the CFA expression of
//     .plt entries (rsp + 8 + ((rip & 15) >= 11 ? 8 : 0)). Register rules
//     that are expressions lose that register, which matters only when
//     the CFA or return address needs it: signal trampolines
//     (__restore_rt) describe the interrupted frame with expressions, so a
//     walk ends at a signal handler's trampoline with StopUnsupported.
//   - Pointer encodings: absptr, (u|s)data2/4/8, (u|s)leb128, applied
//     absolute, pcrel or datarel; indirect, textrel and funcrel are
//     ErrUnsupported (no linker emits them for FDE addresses on Linux).
//   - The frame-pointer fallback trusts any rbp that points up the stack
//     to a return address in an executable mapping: in code without frame
//     pointers and without CFI (rare: JIT code), it can report a wrong
//     caller rather than none.
//   - A hostile object can make each lookup cost up to maxSteps
//     instructions (about a millisecond); rows are not cached.
//
// # Errors
//
// FormatError is malformed CFI, with the section and byte offset.
// ErrNoFDE means no FDE covers an address, which is normal for code
// without CFI. ErrUnsupported is valid CFI this package does not
// evaluate, and ErrTooComplex a program over the caps. A walk never fails:
// it returns the frames it found and why it stopped.
package unwind
