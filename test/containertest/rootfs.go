package containertest

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// populateRoot fills root with what the program needs to run: the program
// and its files in cfg.Dir, the shared libraries and loader they need at
// the paths where the host has them, empty /proc and /tmp, and the root
// files, directories and devices cfg asks for. It also writes the marks
// docker leaves in every container, /.dockerenv and /etc/hostname, since
// tools look for them to tell a container.
func populateRoot(root string, cfg Config, hostname string) error {
	for _, d := range []string{"proc", "tmp", "dev", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(root, "tmp"), 0o1777); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, ".dockerenv"), nil, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "hostname"), []byte(hostname+"\n"), 0o644); err != nil {
		return err
	}
	contents, err := RootContents(cfg.Dir, cfg.Program, cfg.Files)
	if err != nil {
		return err
	}
	for inRoot, src := range cfg.RootFiles {
		if !filepath.IsAbs(inRoot) {
			return fmt.Errorf("root file %q is not an absolute path", inRoot)
		}
		if _, dup := contents[inRoot]; dup {
			return fmt.Errorf("root file %s is already in the container", inRoot)
		}
		contents[inRoot] = src
	}
	for inRoot, src := range contents {
		if err := copyFile(src, filepath.Join(root, inRoot)); err != nil {
			return err
		}
	}
	for _, dir := range cfg.Dirs {
		if !filepath.IsAbs(dir) {
			return fmt.Errorf("directory %q is not an absolute path", dir)
		}
		if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
			return err
		}
	}
	for _, dev := range cfg.Devices {
		if err := copyDevice(dev, filepath.Join(root, dev)); err != nil {
			return err
		}
	}
	return nil
}

// copyDevice makes a device node at dst of the same type, numbers and mode
// as the host's src.
func copyDevice(src, dst string) error {
	if !filepath.IsAbs(src) {
		return fmt.Errorf("device %q is not an absolute path", src)
	}
	var st unix.Stat_t
	if err := unix.Stat(src, &st); err != nil {
		return fmt.Errorf("device %s: %w", src, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR && st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return fmt.Errorf("%s is not a device", src)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := unix.Mknod(dst, st.Mode, int(st.Rdev)); err != nil {
		return fmt.Errorf("making device %s: %w", dst, err)
	}
	// mknod applies the umask; the container sees the host's mode.
	if err := unix.Chmod(dst, st.Mode&0o7777); err != nil {
		return fmt.Errorf("setting the mode of %s: %w", dst, err)
	}
	return nil
}

// RootContents lists what a container root needs for program to run, as
// paths in the root mapped to host paths: the program and its files in dir,
// and the shared libraries and loader they need, at the paths where the
// host has them. It is exported for tests that build a container image
// instead of a root directory.
func RootContents(dir, program string, files map[string]string) (map[string]string, error) {
	contents := map[string]string{filepath.Join(dir, filepath.Base(program)): program}
	objects := []string{program}
	for base, src := range files {
		if base != filepath.Base(base) {
			return nil, fmt.Errorf("file name %q is not a base name", base)
		}
		contents[filepath.Join(dir, base)] = src
		if isELF(src) {
			objects = append(objects, src)
		}
	}
	for _, obj := range objects {
		libs, err := SharedLibraries(obj, files)
		if err != nil {
			return nil, err
		}
		for _, lib := range libs {
			contents[lib] = lib
		}
	}
	return contents, nil
}

func isELF(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// SharedLibraries returns the host paths of the shared libraries and the
// loader that obj needs, leaving out those whose base name is a key of
// provided (they sit beside the program, found through rpath $ORIGIN). A
// static obj needs none. ldd follows the loader's own search, so rpath,
// runpath and ld.so.cache are honoured without reimplementing them; it is
// exported for tests that build a container image instead of a root
// directory.
func SharedLibraries(obj string, files map[string]string) ([]string, error) {
	f, err := elf.Open(obj)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", obj, err)
	}
	dynamic := f.Section(".interp") != nil || f.Type == elf.ET_DYN
	f.Close()
	if !dynamic {
		return nil, nil // static: nothing to copy
	}
	var stderr bytes.Buffer
	cmd := exec.Command("ldd", obj)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if strings.Contains(string(out)+stderr.String(), "not a dynamic executable") {
			return nil, nil
		}
		return nil, fmt.Errorf("ldd %s: %w: %s", obj, err, stderr.Bytes())
	}
	libs, err := parseLdd(out, files)
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", obj, err)
	}
	return libs, nil
}

// parseLdd reads ldd's output: "name => /path (0x...)" for a library,
// "/path (0x...)" for the loader, and "name (0x...)" for the vDSO, which
// has no file. Libraries whose base name is among provided are skipped.
func parseLdd(out []byte, provided map[string]string) ([]string, error) {
	var libs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line == "statically linked" {
			continue
		}
		name, path, arrow := strings.Cut(line, " => ")
		if !arrow {
			path = name
		}
		path, _, _ = strings.Cut(path, " (")
		path = strings.TrimSpace(path)
		if _, ok := provided[filepath.Base(strings.TrimSpace(name))]; ok {
			continue
		}
		if path == "not found" {
			return nil, fmt.Errorf("library %s not found", name)
		}
		if !strings.HasPrefix(path, "/") {
			continue // the vDSO
		}
		libs = append(libs, path)
	}
	return libs, sc.Err()
}

// copyFile copies src (following symbolic links) to dst, keeping the mode
// bits, creating dst's directory.
func copyFile(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", src)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, st.Mode().Perm())
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, out.Close()) }()
	if _, err := io.Copy(out, in); err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	return nil
}
