package container

import (
	"os"
	"testing"
)

func TestParseStorageContainers(t *testing.T) {
	const data = `[
		{"id":"aaa","names":["db","db-alias"],"metadata":"{\"image-name\":\"postgres:16\",\"name\":\"db\"}"},
		{"id":"bbb","names":[],"metadata":"not json"},
		{"id":"ccc"}
	]`
	tests := []struct {
		id          string
		name, image string
		found       bool
	}{
		{"aaa", "db", "postgres:16", true},
		{"bbb", "", "", true},
		{"ccc", "", "", true},
		{"ddd", "", "", false},
	}
	for _, tt := range tests {
		name, image, found, err := parseStorageContainers([]byte(data), tt.id)
		if err != nil || name != tt.name || image != tt.image || found != tt.found {
			t.Errorf("parseStorageContainers(%s) = %q, %q, %v, %v; want %q, %q, %v", tt.id, name, image, found, err, tt.name, tt.image, tt.found)
		}
	}
	if _, _, _, err := parseStorageContainers([]byte(`{"id":"aaa"}`), "aaa"); err == nil {
		t.Error("no error for an object where a list belongs")
	}
}

func FuzzParseStorageContainers(f *testing.F) {
	f.Add([]byte(`[{"id":"x","names":["n"],"metadata":"{\"image-name\":\"i\"}"}]`), "x")
	f.Add([]byte(`[{"id":"x","names":null,"metadata":"{"}]`), "x")
	if data, err := os.ReadFile("testdata/hosts/daemonjson/host/var/lib/containers/storage/overlay-containers/containers.json"); err == nil {
		f.Add(data, id("P1"))
	}
	f.Fuzz(func(t *testing.T, data []byte, id string) {
		name, image, found, err := parseStorageContainers(data, id)
		if err != nil && found {
			t.Fatal("found with an error")
		}
		checkInfoFields(t, Info{Name: name, Image: image})
	})
}
