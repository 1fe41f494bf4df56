// Package flame writes recorded on-CPU stack samples: as pprof (.pb.gz),
// as collapsed stacks for flamegraph.pl (.folded), as one self-contained
// interactive flame graph page (.html), and as a short text summary for
// the terminal (WriteTop).
//
// The model is a Profile of Stacks: distinct call stacks of one thread,
// innermost frame first, with a sample count. Aggregate and Merge build
// them from raw samples. The sampler, unwinder and symbolizer fill it; this
// package only writes it and does no I/O beyond its writer (WriteFile is a
// thin wrapper that picks the format by extension and leaves the file to
// package outfile).
//
// A frame without a symbol is always shown as module+0xoffset (a file
// offset, which `addr2line -e module` or pprof's symbolizer can resolve
// later), never as "??" or a bare address. Kernel frames are marked: they
// carry the "_[k]" suffix in folded output, live in a "[kernel]" mapping in
// pprof, and have their own colour in the HTML page.
//
// Threads are the root frames of flame graphs, named "name-tid" so threads
// of one pool stay apart. In pprof each sample carries a "thread" string
// label and a "tid" numeric label instead (pprof -tags, -tagfocus).
//
// Limits: the HTML page draws boxes with divs and skips those narrower
// than half a pixel, so huge profiles stay usable but their thinnest
// stacks show only in the tooltip of their parent's share. All outputs
// are deterministic for a given Profile.
//
// Errors: ErrUnknownFormat when a file name or format name selects no
// format; otherwise errors from the writer, wrapped with the path.
package flame
