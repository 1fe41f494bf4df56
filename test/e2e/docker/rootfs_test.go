package docker

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/cpuwhy/cpuwhy/test/containertest"
	"github.com/cpuwhy/cpuwhy/test/scenario"
)

// writeRootfs writes a tarball for docker import holding prog at
// dir/<base name of prog.Path>, its files beside it, and the shared
// libraries and loader they need at the paths the host has them. There is
// no shell: the image runs the program and nothing else.
func writeRootfs(w io.Writer, prog scenario.Program, dir string) error {
	// name in the image -> host path
	files, err := containertest.RootContents(dir, prog.Path, prog.Files)
	if err != nil {
		return err
	}

	tw := tar.NewWriter(w)
	dirs := map[string]bool{}
	writeDir := func(name string, mode int64) error {
		dirs[name] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode})
	}
	for _, d := range []string{"tmp", "proc", "dev", "sys", "etc"} {
		mode := int64(0o755)
		if d == "tmp" {
			mode = 0o1777
		}
		if err := writeDir(d, mode); err != nil {
			return err
		}
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		rel := strings.TrimPrefix(name, "/")
		// Parents first, each once, so the layer has no implied
		// directories with unknown modes.
		var parents []string
		for p := path.Dir(rel); p != "."; p = path.Dir(p) {
			parents = append(parents, p)
		}
		for _, p := range slices.Backward(parents) {
			if !dirs[p] {
				if err := writeDir(p, 0o755); err != nil {
					return err
				}
			}
		}
		if err := addFile(tw, rel, files[name]); err != nil {
			return err
		}
	}
	return tw.Close()
}

// addFile writes host file src (following symbolic links: the loader and
// libc are often links) into the archive as a regular file.
func addFile(tw *tar.Writer, name, src string) (err error) {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, f.Close()) }()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", src)
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: int64(st.Mode().Perm()), Size: st.Size(), ModTime: st.ModTime()}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if _, err := io.Copy(tw, f); err != nil {
		return fmt.Errorf("adding %s: %w", src, err)
	}
	return nil
}
