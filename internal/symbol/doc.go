// Package symbol names code addresses of a process.
//
// Modules names an address by the module it falls in and its offset in
// that module's file ("libnat.so+0x1139"), from the mappings alone: a
// form that stays meaningful when the process is stripped or gone. An
// address no mapping covers is said to be unmapped, never printed bare.
//
// Symbolizer goes further and turns (pid, pc) into a Frame with a function
// name and, when there is line information, a file and line. It uses what
// is there, in order (an Image names them by mappings the process had
// before it ran exec, for what was sampled then):
//
//   - Go's .gopclntab with debug/gosym (it survives -ldflags=-s -w),
//     counted from runtime.text, which in cgo binaries linked by the C
//     toolchain is not where .text starts;
//   - the object's .symtab and .dynsym, and the .symtab inside
//     .gnu_debugdata (MiniDebugInfo, xz-compressed, as Fedora ships);
//   - a separate debug file when the object lacks .symtab or DWARF: by
//     build-id (.build-id/xx/rest.debug) and by .gnu_debuglink, under
//     --debug-dir directories, then under /usr/lib/debug and beside the
//     object in the target's root, then on the host; a candidate must
//     carry the object's build-id;
//   - DWARF line tables for file:line.
//
// What it costs: an object's symbol tables are read when an address in it
// is first named, straight from the section bytes into compact entries
// (names stay in the string table until asked for). Its DWARF line
// tables are read when a line is first asked for, from .debug_line alone
// (lines.go says why .debug_info, most of DWARF and compressed by
// distributions, is not read): one pass indexes every sequence of rows
// by address with a checkpoint every few rows, and each lookup decodes a
// few rows from the checkpoint below it. The object (or its debug file)
// stays open until then; Close releases it.
//
// C++ and Rust names are demangled to the function's qualified name,
// without parameters ("vpn::Session::pump"). Objects are opened through
// package objfile, so a container's files are read in the container's
// root and a deleted binary through map_files; tables are built once per
// object (by build-id, or path and inode), sorted, searched by binary
// search, and kept in a bounded LRU.
//
// When nothing names an address, Frame.Function is empty and the frame
// prints as module+0xoffset, like Modules; MissingSymbols lists those
// modules with their build-id and how to get their symbols.
//
// Errors: Symbolize fails only when the process's mappings cannot be read
// (proc.ErrGone when it is gone). A module that cannot be opened or whose
// symbol sources are damaged or too large (objfile.ErrMalformed,
// objfile.ErrTooLarge) still gets module+offset frames; Errors says why.
//
// Limits: no inlined frames (DWARF inline info is not read), no
// symbolization of [vdso] or JIT code, PLT stubs are not named after
// their target (recvfrom@plt prints as module+0xoffset), and the
// debuglink CRC is not checked (the build-id is, when the object has one).
package symbol
