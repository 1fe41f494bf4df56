package nodev8

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"testing"

	"github.com/cpuwhy/cpuwhy/internal/objfile"
	"github.com/cpuwhy/cpuwhy/test/privtest"
)

func nodeELF(t testing.TB) *objfile.File {
	t.Helper()
	path, err := exec.LookPath("node")
	if err != nil {
		privtest.Require(t, "node is not installed (apt-get install nodejs)")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := objfile.Parse(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestReadLayoutNode reads the layout of the node CI installs: the
// version, and the frame offsets every release since V8 7 has had.
func TestReadLayoutNode(t *testing.T) {
	l, err := ReadLayout(nodeELF(t).ELF)
	if err != nil {
		t.Fatal(err)
	}
	if l.Major != 11 || l.Minor != 3 {
		t.Errorf("V8 %d.%d, want 11.3 (node 20)", l.Major, l.Minor)
	}
	if l.FPFunction != -16 || l.FPContextType != -8 {
		t.Errorf("frame offsets function %d, context %d; want -16, -8", l.FPFunction, l.FPContextType)
	}
	if l.TypeJSFunction == 0 || l.TypeSFI == 0 || l.JSFunctionShared == 0 || l.FirstNonstringType == 0 {
		t.Errorf("constants missing: %+v", l)
	}
}

func TestReadLayoutUnknownVersion(t *testing.T) {
	f := nodeELF(t)
	known := Known
	Known = [][2]int{{10, 2}}
	defer func() { Known = known }()
	if _, err := ReadLayout(f.ELF); !errors.Is(err, ErrUnknownVersion) {
		t.Errorf("ReadLayout = %v, want ErrUnknownVersion", err)
	}
}

// TestReadLayoutNoMetadata: a binary without the constants (this test's
// own) is not V8.
func TestReadLayoutNoMetadata(t *testing.T) {
	data, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	f, err := objfile.Parse(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ReadLayout(f.ELF); !errors.Is(err, ErrNoMetadata) {
		t.Errorf("ReadLayout = %v, want ErrNoMetadata", err)
	}
}

func FuzzReadLayout(f *testing.F) {
	f.Add([]byte("\x7fELF"))
	f.Fuzz(func(t *testing.T, b []byte) {
		obj, err := objfile.Parse(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		func() {
			defer func() { recover() }() // debug/elf's own panics are objfile's concern
			ReadLayout(obj.ELF)
		}()
	})
}
