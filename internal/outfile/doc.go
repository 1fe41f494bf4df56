// Package outfile writes a command's output file (-o) without harming
// what is at the path, and checks the path before the work that fills it.
//
// cpuwhy runs as root, so whatever the path names, it may replace. The
// profile used to be written beside the path and renamed over it, which
// turned /dev/full into a regular file and would have done the same to
// /dev/null, /dev/stdout, a FIFO or a symbolic link. Now what is at the
// path decides:
//
//   - A regular file, or nothing yet, is written beside it and renamed
//     over it: the file appears whole or not at all, so an error or
//     Ctrl-C never leaves a truncated profile that a viewer would
//     half-read. An existing file keeps its permissions.
//   - A symbolic link is followed to the file it names, which is written
//     as above; the link stays a link (a dangling link gets its target
//     created). Links are followed as the kernel's fs.protected_symlinks
//     allows: not one in a sticky world-writable directory such as /tmp
//     that belongs to neither the directory's owner nor cpuwhy's user.
//   - A character device (a terminal, /dev/null, /dev/full) or a FIFO is
//     opened and written in place, never replaced. A FIFO is opened
//     before the work, waiting for a reader as a shell's `>` would
//     (cancelled with the context).
//   - A path that leads to one of the process's own streams (/dev/stdout,
//     /dev/fd/1, /proc/self/fd/1, or the terminal stdout is on) is
//     written through that stream, in order with what else is written
//     there, and the stream is left open.
//   - A directory, a socket and a block device are refused: a profile
//     written over a disk would destroy it.
//
// Open does every check it can before the work starts: the directory
// exists and a file can be created in it, the device or FIFO opens. So a
// path that cannot take the output fails at once, not after the whole
// sampling window. What is still checked at Write is that the regular
// file's path did not become something else meanwhile.
//
// Errors: those of the file system, wrapped with the path (match them
// with errors.Is against fs.ErrNotExist, fs.ErrPermission, syscall
// errnos), ErrNotFile for what is refused, and the context's error when a
// wait for a FIFO's reader is cancelled.
package outfile
