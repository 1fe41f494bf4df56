package proc

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestReadCappedAndPIDs(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"7", "30", "self", "100"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "7", "cgroup"), []byte("0::/docker/abc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fs := FS{Root: root}
	if got, err := fs.PIDs(); err != nil || !slices.Equal(got, []int{7, 30, 100}) {
		t.Errorf("PIDs() = %v, %v; want [7 30 100]", got, err)
	}
	if data, err := fs.ReadCapped(64, "7", "cgroup"); err != nil || string(data) != "0::/docker/abc\n" {
		t.Errorf("ReadCapped = %q, %v", data, err)
	}
	// At the cap exactly it is read; one byte over, refused whole.
	if _, err := fs.ReadCapped(15, "7", "cgroup"); err != nil {
		t.Errorf("a file of exactly the cap: %v", err)
	}
	if data, err := fs.ReadCapped(14, "7", "cgroup"); !errors.Is(err, ErrTooLarge) || data != nil {
		t.Errorf("over the cap: %q, %v; want ErrTooLarge and nothing", data, err)
	}
}
