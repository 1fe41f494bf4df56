// Package objfile opens the ELF objects a target process has mapped, as
// the target sees them, and says where their code landed.
//
// A mapping's path is opened through the target's /proc/PID/root with
// sys.OpenInRoot, so a container's absolute symlinks resolve inside the
// container and never reach a host file. When that path no longer names
// what was mapped (the mapping says " (deleted)", or the file now there
// has another device/inode or build-id) the object is opened through
// /proc/PID/map_files/<start>-<end>, the kernel's handle on the mapped
// file itself.
//
// Parse is the parser: it takes an io.ReaderAt and trusts nothing in it.
// Sections larger than MaxSection are refused, and panics of debug/elf on
// malformed input become ErrMalformed errors.
//
// Errors: ErrMalformed for objects that are not ELF or are damaged,
// ErrNoMapping when the process no longer has the mapping, and the
// errors of the open (ENOENT, EACCES; proc.ErrGone when the process is
// gone).
package objfile
