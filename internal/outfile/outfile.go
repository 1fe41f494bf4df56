package outfile

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/sys"
)

// ErrNotFile is wrapped by the error for a path that names something no
// output may be written to: a directory, a socket, a block device.
var ErrNotFile = errors.New("give a file, a terminal or a FIFO")

// Options shape Open.
type Options struct {
	// Streams are files the process already writes to (its stdout and
	// stderr). A path that leads to one of them is written through it.
	Streams []*os.File
	// Waiting, if set, is called once when Open waits for a process to
	// open a FIFO for reading.
	Waiting func()
}

// File is an output path checked, and for a device or a FIFO opened,
// before the work that produces the output.
type File struct {
	path string // as given

	// For a regular file: the path the given one leads to, links
	// followed, in a directory with its links resolved; and the
	// permissions to give the file.
	dest string
	perm fs.FileMode

	// For anything written in place: the open file, and whether Open
	// opened it (and Close closes it) or it is one of Options.Streams.
	w   *os.File
	own bool

	written bool
}

// maxLinks bounds the symbolic links followed, as the kernel's 40.
const maxLinks = 40

// fifoPoll is how often Open tries again to open a FIFO without a
// reader: a blocking open could not be cancelled.
const fifoPoll = 50 * time.Millisecond

// Open checks that path can take an output and opens it if it is written
// in place. The caller writes with Write, or gives up with Close.
func Open(ctx context.Context, path string, opts Options) (*File, error) {
	if path == "" {
		return nil, fmt.Errorf("no output path: %w", fs.ErrInvalid)
	}
	f := &File{path: path}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		fi = nil
	case err != nil:
		return nil, err // *fs.PathError names the path
	}
	if err := f.prepare(ctx, fi, opts); err != nil {
		return nil, err
	}
	return f, nil
}

// prepare readies f for what Open found at the path: fi, or nil for
// nothing.
func (f *File) prepare(ctx context.Context, fi fs.FileInfo, opts Options) error {
	if fi == nil {
		return f.prepareRegular(nil)
	}
	for _, s := range opts.Streams {
		if si, err := s.Stat(); err == nil && os.SameFile(fi, si) {
			f.w = s
			return nil
		}
	}
	path := f.path
	switch m := fi.Mode(); {
	case m.IsRegular():
		return f.prepareRegular(fi)
	case m&fs.ModeCharDevice != 0:
		return f.openInPlace(ctx, fi, nil)
	case m&fs.ModeNamedPipe != 0:
		return f.openInPlace(ctx, fi, opts.Waiting)
	case m.IsDir():
		return fmt.Errorf("%s is a directory: %w", path, ErrNotFile)
	case m&fs.ModeSocket != 0:
		return fmt.Errorf("%s is a socket: %w", path, ErrNotFile)
	case m&fs.ModeDevice != 0:
		return fmt.Errorf("%s is a block device (a disk): writing over it would destroy what it holds: %w", path, ErrNotFile)
	}
	return fmt.Errorf("%s is not a file (%v): %w", path, fi.Mode().Type(), ErrNotFile)
}

// prepareRegular finds the file path leads to, which is a regular file
// (existing) or nothing yet (existing nil), and checks that a file can be
// created beside it.
func (f *File) prepareRegular(existing fs.FileInfo) error {
	dest, err := resolve(f.path)
	if err != nil {
		return err
	}
	f.dest = dest
	f.perm = 0o644
	if existing != nil {
		// A path through a magic link of /proc names the file by a
		// path that need not lead to it (a deleted file, another
		// mount namespace): only replace what the path leads to.
		if di, err := os.Stat(dest); err != nil || !os.SameFile(existing, di) {
			return fmt.Errorf("%s: cannot tell which file it leads to (it resolves to %s)", f.path, dest)
		}
		f.perm = existing.Mode().Perm()
	}
	probe, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".*")
	if err != nil {
		// The probe's own name would only puzzle the user.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("cannot create a file beside %s: %w", dest, err)
	}
	probe.Close()
	os.Remove(probe.Name())
	return nil
}

// resolve follows the symbolic links at the end of path, and returns the
// path of the file they lead to (which need not exist) in its directory
// with every link resolved, so that the file written beside it lands in
// the same directory and a rename replaces that file, not a link.
func resolve(path string) (string, error) {
	for range maxLinks {
		fi, err := os.Lstat(path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		dir, base := split(path)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			if base == "" || base == "." || base == ".." {
				return "", fmt.Errorf("%s names no file: %w", path, ErrNotFile)
			}
			real, err := filepath.EvalSymlinks(dir)
			if err != nil {
				return "", fmt.Errorf("no directory %s: %w", dir, err)
			}
			return filepath.Join(real, base), nil
		}
		if err := mayFollow(path, dir, fi); err != nil {
			return "", err
		}
		target, err := os.Readlink(path)
		if err != nil {
			return "", err
		}
		if !strings.HasPrefix(target, "/") {
			// Relative to the link's directory, resolved first so
			// that a ".." in the target climbs from where the link
			// really is, as the kernel's does.
			real, err := filepath.EvalSymlinks(dir)
			if err != nil {
				return "", fmt.Errorf("directory of %s: %w", path, err)
			}
			target = real + "/" + target
		}
		path = target
	}
	return "", &fs.PathError{Op: "resolve", Path: path, Err: syscall.ELOOP}
}

// split cuts path at its last slash without cleaning it: a lexical clean
// would take "link/.." for the directory holding link.
func split(path string) (dir, base string) {
	i := strings.LastIndexByte(path, '/')
	switch {
	case i < 0:
		return ".", path
	case i == 0:
		return "/", path[1:]
	}
	return path[:i], path[i+1:]
}

// mayFollow applies the rule of the kernel's fs.protected_symlinks, which
// the path walk of resolve bypasses: a link in a sticky world-writable
// directory (/tmp) is followed only if it belongs to the directory's
// owner or to the user following it. Otherwise another user could point
// root's `-o /tmp/x.html` at any file on the host.
func mayFollow(link, dir string, fi fs.FileInfo) error {
	di, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if di.Mode()&fs.ModeSticky == 0 || di.Mode().Perm()&0o002 == 0 {
		return nil
	}
	lst, ok1 := fi.Sys().(*syscall.Stat_t)
	dst, ok2 := di.Sys().(*syscall.Stat_t)
	if !ok1 || !ok2 || lst.Uid == dst.Uid || int(lst.Uid) == os.Geteuid() {
		return nil
	}
	return fmt.Errorf("not following %s: a link of user %d in the shared directory %s (as fs.protected_symlinks would not): %w",
		link, lst.Uid, dir, fs.ErrPermission)
}

// openInPlace opens a device or a FIFO, waiting for a FIFO's reader, and
// checks that what was opened is what was examined.
func (f *File) openInPlace(ctx context.Context, examined fs.FileInfo, waiting func()) error {
	for {
		w, err := sys.OpenForWriting(f.path)
		if errors.Is(err, sys.ErrNoReader) {
			if waiting != nil {
				waiting()
				waiting = nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("waiting for a reader of %s: %w", f.path, ctx.Err())
			case <-time.After(fifoPoll):
			}
			continue
		}
		if err != nil {
			return err
		}
		if fi, err := w.Stat(); err != nil || !os.SameFile(fi, examined) {
			w.Close()
			return fmt.Errorf("%s changed while being opened", f.path)
		}
		f.w, f.own = w, true
		return nil
	}
}

// Path is the path as given to Open.
func (f *File) Path() string { return f.path }

// Write writes the output with write, then closes what Open opened. A
// regular file is written beside its path and renamed over it once
// complete; anything else is written in place. write may be called with
// a buffered writer: it must not keep it.
func (f *File) Write(write func(io.Writer) error) error {
	if f.written {
		return fmt.Errorf("%s written twice", f.path)
	}
	f.written = true
	if f.w != nil {
		err := writeBuffered(f.w, write)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		var pe *fs.PathError
		if err != nil && !errors.As(err, &pe) { // a PathError names the file already
			return fmt.Errorf("writing %s: %w", f.path, err)
		}
		return err
	}
	return f.replace(write)
}

// replace writes a regular file whole, or leaves it as it was.
func (f *File) replace(write func(io.Writer) error) error {
	// The path was a regular file or nothing when Open looked; if it
	// has become anything else since (a device, a link, a FIFO), a
	// rename would replace that.
	if fi, err := os.Lstat(f.dest); err == nil && !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is no longer a regular file (%v), nothing written: %w", f.dest, fi.Mode().Type(), ErrNotFile)
	}
	tmp, err := os.CreateTemp(filepath.Dir(f.dest), "."+filepath.Base(f.dest)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", f.dest, err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if err := writeBuffered(tmp, write); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", f.dest, err)
	}
	if err := tmp.Chmod(f.perm); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", f.dest, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", f.dest, err)
	}
	if err := os.Rename(tmp.Name(), f.dest); err != nil {
		return fmt.Errorf("writing %s: %w", f.dest, err)
	}
	return nil
}

// writeBuffered runs write through a buffer: the writers make many small
// writes, each a system call on a device or a pipe.
func writeBuffered(w io.Writer, write func(io.Writer) error) error {
	b := bufio.NewWriterSize(w, 64<<10)
	if err := write(b); err != nil {
		return err
	}
	return b.Flush()
}

// Close releases what Open opened, without writing; a File written or
// nil is left alone. It never closes one of Options.Streams.
func (f *File) Close() error {
	if f == nil || f.w == nil {
		return nil
	}
	w, own := f.w, f.own
	f.w, f.own = nil, false
	if !own {
		return nil
	}
	return w.Close()
}
