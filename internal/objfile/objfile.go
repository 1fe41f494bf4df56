package objfile

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"

	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/sys"
)

// MaxSection caps the size of a section this package reads into memory:
// no real symbol table, line table or pclntab comes near it, and a hostile
// header can claim anything.
const MaxSection = 512 << 20

var (
	// ErrMalformed matches errors about bytes that are not a usable ELF
	// object.
	ErrMalformed = errors.New("malformed object")
	// ErrNoMapping is returned when the process does not (or no longer)
	// map the mapping asked about.
	ErrNoMapping = errors.New("mapping not found")
	// ErrTooLarge is returned for a section larger than MaxSection.
	ErrTooLarge = errors.New("section too large")
)

// File is one parsed ELF object.
type File struct {
	ELF     *elf.File
	BuildID string // hex of .note.gnu.build-id, "" when there is none
	Path    string // the path the target knows it by (or the one opened)
	Dev     uint64 // device and inode of the opened file, 0 when not a file
	Ino     uint64
	Mtime   int64  // its modification time, ns since the epoch; 0 when not a file
	Via     string // how it was opened: "root", "map_files" or "host"

	r      io.ReaderAt
	closer io.Closer
	size   int64
}

// Parse parses the ELF object in r, of size bytes (-1 when unknown).
func Parse(r io.ReaderAt, size int64) (f *File, err error) {
	defer func() {
		if p := recover(); p != nil {
			f, err = nil, fmt.Errorf("%w: parser panic: %v", ErrMalformed, p)
		}
	}()
	e, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	f = &File{ELF: e, r: r, size: size}
	if id, err := f.readBuildID(); err == nil {
		f.BuildID = id
	}
	return f, nil
}

// Open opens the object mapped by m in process pid, as the process sees
// it (see the package documentation).
func Open(pfs proc.FS, pid int, m proc.Mapping) (*File, error) {
	path := m.Path
	deleted := strings.HasSuffix(path, " (deleted)")
	if path == "" || strings.HasPrefix(path, "[") {
		return nil, fmt.Errorf("mapping %x-%x of %d: %w: no file", m.Start, m.End, pid, ErrNoMapping)
	}
	mapFiles := pfs.PIDPath(pid, "map_files", fmt.Sprintf("%x-%x", m.Start, m.End))
	// Stat follows the map_files link to the mapped file itself.
	want, haveWant := statOf(os.Stat(mapFiles))
	if !deleted {
		f, err := openInRoot(pfs, pid, path)
		if err == nil && (!haveWant || (f.Dev == want.Dev && f.Ino == want.Ino)) {
			return f, nil
		}
		if err == nil {
			f.Close()
		}
		if !haveWant {
			return nil, err
		}
	}
	f, err := openFile(mapFiles, "map_files")
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("opening %s of %d: %w: %w", strings.TrimSuffix(path, " (deleted)"), pid, ErrNoMapping, proc.ErrGone)
		}
		return nil, fmt.Errorf("opening %s of %d: %w", path, pid, err)
	}
	f.Path = strings.TrimSuffix(path, " (deleted)")
	return f, nil
}

// Identify returns the key of the file m maps in process pid, as Open
// would open it, without reading it: the device, inode, size and
// modification time of the file mapped, by a stat of its
// /proc/PID/map_files entry, or, where that cannot be read (it takes
// CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE), of the file at its path
// through the process's root. It never gives a build-id key: a cache
// keyed by Identify is its own. A container's file is another inode
// than the host's at the same path, so another key.
func Identify(pfs proc.FS, pid int, m proc.Mapping) (Key, error) {
	path := m.Path
	deleted := strings.HasSuffix(path, " (deleted)")
	path = strings.TrimSuffix(path, " (deleted)")
	if path == "" || strings.HasPrefix(path, "[") {
		return Key{}, fmt.Errorf("mapping %x-%x of %d: %w: no file", m.Start, m.End, pid, ErrNoMapping)
	}
	st, ok := statOf(os.Stat(pfs.PIDPath(pid, "map_files", fmt.Sprintf("%x-%x", m.Start, m.End))))
	if !ok {
		if deleted {
			return Key{}, fmt.Errorf("identifying %s of %d: %w", path, pid, ErrNoMapping)
		}
		osf, err := sys.OpenInRoot(pfs.PIDPath(pid, "root"), path)
		if err != nil {
			return Key{}, fmt.Errorf("identifying %s of %d: %w", path, pid, err)
		}
		defer osf.Close()
		if st, ok = statOf(osf.Stat()); !ok {
			return Key{}, fmt.Errorf("stat of %s of %d: %w", path, pid, ErrNoMapping)
		}
	}
	return Key{Path: path, Dev: st.Dev, Ino: st.Ino, Size: st.Size, Mtime: st.Mtim.Nano()}, nil
}

// OpenPast opens the object mapped by m in process pid before it ran
// exec: by its path through the process's root alone, since
// /proc/PID/map_files now lists the new program's mappings, and one at
// m's addresses would be another object. A deleted object is gone.
func OpenPast(pfs proc.FS, pid int, m proc.Mapping) (*File, error) {
	path := m.Path
	if path == "" || strings.HasPrefix(path, "[") || strings.HasSuffix(path, " (deleted)") {
		return nil, fmt.Errorf("mapping %x-%x of %d before its exec: %w: no file", m.Start, m.End, pid, ErrNoMapping)
	}
	return openInRoot(pfs, pid, path)
}

func openInRoot(fs proc.FS, pid int, path string) (*File, error) {
	osf, err := sys.OpenInRoot(fs.PIDPath(pid, "root"), path)
	if err != nil {
		return nil, fmt.Errorf("opening %s of %d: %w", path, pid, err)
	}
	f, err := fromOSFile(osf, "root")
	if err != nil {
		return nil, fmt.Errorf("%s of %d: %w", path, pid, err)
	}
	f.Path = path
	return f, nil
}

// OpenInRoot opens path below root (a target's /proc/PID/root, or "/" for
// the host) with sys.OpenInRoot and parses it. Symbol lookups use it for
// separate debug files.
func OpenInRoot(root, path string) (*File, error) {
	osf, err := sys.OpenInRoot(root, path)
	if err != nil {
		return nil, err
	}
	f, err := fromOSFile(osf, root)
	if err != nil {
		return nil, fmt.Errorf("%s in %s: %w", path, root, err)
	}
	f.Path = path
	return f, nil
}

func openFile(path, via string) (*File, error) {
	osf, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	return fromOSFile(osf, via)
}

func fromOSFile(osf *os.File, via string) (*File, error) {
	st, ok := statOf(osf.Stat())
	if !ok {
		osf.Close()
		return nil, fmt.Errorf("stat of %s: %w", osf.Name(), ErrNoMapping)
	}
	f, err := Parse(osf, st.Size)
	if err != nil {
		osf.Close()
		return nil, err
	}
	f.Dev, f.Ino, f.Via, f.closer = st.Dev, st.Ino, via, osf
	f.Mtime = st.Mtim.Nano()
	return f, nil
}

// Close releases the file.
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	return f.closer.Close()
}

// Section returns the contents of the named section, nil without error
// when there is no such section (or it has no bytes in the file).
func (f *File) Section(name string) (data []byte, err error) {
	s := f.ELF.Section(name)
	if s == nil || s.Type == elf.SHT_NOBITS {
		return nil, nil
	}
	return SectionData(s)
}

// SectionData reads a section, refusing sizes above MaxSection (or beyond
// the file) and turning debug/elf panics into errors.
func SectionData(s *elf.Section) (data []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			data, err = nil, fmt.Errorf("%w: section %s: panic: %v", ErrMalformed, s.Name, p)
		}
	}()
	if s.Size > MaxSection || s.FileSize > MaxSection {
		return nil, fmt.Errorf("section %s: %d bytes: %w (max %d)", s.Name, s.Size, ErrTooLarge, MaxSection)
	}
	data, err = s.Data()
	if err != nil {
		return nil, fmt.Errorf("%w: section %s: %w", ErrMalformed, s.Name, err)
	}
	return data, nil
}

// readBuildID reads the GNU build-id note.
func (f *File) readBuildID() (string, error) {
	for _, name := range []string{".note.gnu.build-id"} {
		data, err := f.Section(name)
		if err != nil || data == nil {
			continue
		}
		if id := ParseBuildIDNote(data, f.ELF.ByteOrder); id != "" {
			return id, nil
		}
	}
	// Objects whose section headers are gone still have the note in a
	// PT_NOTE segment.
	for _, p := range f.ELF.Progs {
		if p.Type != elf.PT_NOTE || p.Filesz > 1<<16 {
			continue
		}
		data := make([]byte, p.Filesz)
		if _, err := p.ReadAt(data, 0); err != nil {
			continue
		}
		if id := ParseBuildIDNote(data, f.ELF.ByteOrder); id != "" {
			return id, nil
		}
	}
	return "", errors.New("no build-id")
}

// ParseBuildIDNote returns the hex build-id in a sequence of ELF notes, or
// "" when there is none.
func ParseBuildIDNote(data []byte, order binary.ByteOrder) string {
	for len(data) >= 12 {
		namesz := uint64(order.Uint32(data[0:]))
		descsz := uint64(order.Uint32(data[4:]))
		typ := order.Uint32(data[8:])
		data = data[12:]
		nameEnd := align4(namesz)
		descEnd := nameEnd + align4(descsz)
		if nameEnd > uint64(len(data)) || descEnd > uint64(len(data)) || nameEnd+descsz > uint64(len(data)) {
			return ""
		}
		name := data[:namesz]
		if typ == ntGNUBuildID && bytes.Equal(bytes.TrimRight(name, "\x00"), []byte("GNU")) && descsz > 0 {
			return hex.EncodeToString(data[nameEnd : nameEnd+descsz])
		}
		data = data[descEnd:]
	}
	return ""
}

func align4(n uint64) uint64 { return (n + 3) &^ 3 }

// Debuglink returns the file name and CRC of .gnu_debuglink, or "" when
// there is none.
func (f *File) Debuglink() (name string, crc uint32, err error) {
	data, err := f.Section(".gnu_debuglink")
	if err != nil || data == nil {
		return "", 0, err
	}
	return ParseDebuglink(data, f.ELF.ByteOrder)
}

// ParseDebuglink parses a .gnu_debuglink section: a NUL-terminated file
// name, padding to 4 bytes, and a CRC32.
func ParseDebuglink(data []byte, order binary.ByteOrder) (string, uint32, error) {
	i := bytes.IndexByte(data, 0)
	if i <= 0 {
		return "", 0, fmt.Errorf("%w: .gnu_debuglink has no name", ErrMalformed)
	}
	name := string(data[:i])
	off := align4(uint64(i) + 1)
	if off+4 > uint64(len(data)) {
		return "", 0, fmt.Errorf("%w: .gnu_debuglink has no CRC", ErrMalformed)
	}
	if strings.Contains(name, "/") || name == "." || name == ".." {
		return "", 0, fmt.Errorf("%w: .gnu_debuglink names %q, not a file name", ErrMalformed, name)
	}
	return name, order.Uint32(data[off:]), nil
}

// FileOffsetToVaddr returns the virtual address (as linked) of a file
// offset, through the loadable segment holding it.
func (f *File) FileOffsetToVaddr(off uint64) (uint64, bool) {
	for _, p := range f.ELF.Progs {
		if p.Type == elf.PT_LOAD && off >= p.Off && off-p.Off < p.Filesz {
			return off - p.Off + p.Vaddr, true
		}
	}
	return 0, false
}

// PCToVaddr returns the address as linked of pc, an address in the
// target inside mapping m of this object. For a PIE or shared library the
// difference is the load bias: m.Start - m.Offset + segment offset -
// segment vaddr, where the mapping's page-aligned offset falls in the
// segment.
func (f *File) PCToVaddr(pc uint64, m proc.Mapping) (uint64, error) {
	if pc < m.Start || pc >= m.End {
		return 0, fmt.Errorf("%#x is outside mapping %x-%x: %w", pc, m.Start, m.End, ErrNoMapping)
	}
	off := pc - m.Start + m.Offset
	if v, ok := f.FileOffsetToVaddr(off); ok {
		return v, nil
	}
	return 0, fmt.Errorf("file offset %#x of %s is in no loadable segment: %w", off, f.Path, ErrMalformed)
}

// ntGNUBuildID is the note type of a GNU build-id (debug/elf lacks it).
const ntGNUBuildID = 3

// statOf gives the device, inode and size of a stat result.
func statOf(fi fs.FileInfo, err error) (st *syscall.Stat_t, ok bool) {
	if err != nil {
		return nil, false
	}
	st, ok = fi.Sys().(*syscall.Stat_t)
	return st, ok
}

// Opener opens the objects of process pid's mappings as Open does, for
// callers that want the parsed ELF (the unwinder's tables), so that the
// unwinder reads the same file as the symbolizer: the one mapped, not
// whatever has since replaced it at its path. Close closes every object
// it opened.
type Opener struct {
	fs     proc.FS
	pid    int
	opened []*File
}

// NewOpener returns an Opener of the objects of pid.
func NewOpener(fs proc.FS, pid int) *Opener {
	return &Opener{fs: fs, pid: pid}
}

// OpenELF opens the object m maps as Open does: the file mapped, checked
// by device and inode, through the target's root or its map_files.
func (o *Opener) OpenELF(m proc.Mapping) (*elf.File, error) {
	f, err := Open(o.fs, o.pid, m)
	if err != nil {
		return nil, err
	}
	o.opened = append(o.opened, f)
	return f.ELF, nil
}

// Identify returns the key of the object m maps, as Identify does.
func (o *Opener) Identify(m proc.Mapping) (Key, error) { return Identify(o.fs, o.pid, m) }

// Close closes every object opened.
func (o *Opener) Close() {
	for _, f := range o.opened {
		f.Close()
	}
	o.opened = nil
}
