package proc

import (
	"os"
	"testing"
)

func TestParseMaps(t *testing.T) {
	data := []byte(`55d0c0a00000-55d0c0a02000 r--p 00000000 fe:01 1234 /usr/bin/cat
55d0c0a02000-55d0c0a07000 r-xp 00002000 fe:01 1234 /usr/bin/cat
7ffd1c3e0000-7ffd1c401000 rw-p 00000000 00:00 0                          [stack]
7f0000000000-7f0000001000 r-xp 00000000 fe:01 99 /opt/my app/lib x.so
7f0000002000-7f0000003000 rw-p 00000000 00:00 0
`)
	if maps, err := ParseMaps([]byte("1-2 r-xp 0 0:0 0 0\n")); err != nil || maps[0].Path != "0" {
		t.Errorf("path 0 = %+v, %v", maps, err)
	}
	maps, err := ParseMaps(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(maps) != 5 {
		t.Fatalf("%d mappings, want 5", len(maps))
	}
	m := maps[1]
	if m.Start != 0x55d0c0a02000 || m.End != 0x55d0c0a07000 || m.Offset != 0x2000 || !m.Exec() || m.Path != "/usr/bin/cat" {
		t.Errorf("mapping 1 = %+v", m)
	}
	if maps[2].Path != "[stack]" || maps[2].Exec() || maps[4].Path != "" {
		t.Errorf("mappings 2 and 4 = %+v, %+v", maps[2], maps[4])
	}
	if maps[3].Path != "/opt/my app/lib x.so" {
		t.Errorf("path with spaces = %q", maps[3].Path)
	}
	if _, err := ParseMaps([]byte("zz-1 r-xp 0 0:0 0\n")); err == nil {
		t.Error("bad address parsed")
	}
}

func TestMapsSelf(t *testing.T) {
	maps, err := FS{}.Maps(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	for _, m := range maps {
		if m.Exec() && m.Path == exe {
			return
		}
	}
	t.Errorf("no executable mapping of %s in %d mappings", exe, len(maps))
}

func FuzzParseMaps(f *testing.F) {
	f.Add([]byte("55d0c0a02000-55d0c0a07000 r-xp 00002000 fe:01 1234 /usr/bin/cat\n"))
	f.Add([]byte("1-2 x 3 4 5   a  b\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		maps, err := ParseMaps(data)
		if err != nil {
			return
		}
		for _, m := range maps {
			_ = m.Exec()
		}
	})
}
