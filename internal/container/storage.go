package container

import (
	"encoding/json"
	"fmt"
	"path/filepath"
)

// containers/storage (used by Podman and CRI-O) keeps one containers.json per
// storage driver under its graph root.
const storageGraphRoot = "/var/lib/containers/storage"

var storageDrivers = []string{"overlay", "vfs", "btrfs", "zfs"}

// crioRunRoot holds CRI-O's per-container OCI configs while they run.
const crioRunRoot = "/run/containers/storage/overlay-containers"

// storageContainer is an entry of containers.json. Metadata is a JSON
// document inside a string, written by Podman and CRI-O.
type storageContainer struct {
	ID       string   `json:"id"`
	Names    []string `json:"names"`
	Metadata string   `json:"metadata"`
}

// parseStorageContainers finds container id in the bytes of a
// containers/storage containers.json and returns its first name and, when its
// metadata records it, its image. found is false when id is not listed.
func parseStorageContainers(data []byte, id string) (name, image string, found bool, err error) {
	if len(data) > maxJSONFile {
		return "", "", false, fmt.Errorf("containers.json of %d bytes: %w", len(data), ErrTooLarge)
	}
	var all []storageContainer
	if err := json.Unmarshal(data, &all); err != nil {
		return "", "", false, fmt.Errorf("containers.json: %w: %w", ErrMalformed, err)
	}
	for _, c := range all {
		if c.ID != id {
			continue
		}
		if len(c.Names) > 0 {
			name = c.Names[0]
		}
		var meta struct {
			ImageName string `json:"image-name"`
		}
		// Metadata is free-form to containers/storage; a bad one loses the
		// image, not the name.
		if json.Unmarshal([]byte(c.Metadata), &meta) == nil {
			image = meta.ImageName
		}
		return capField(name), capField(image), true, nil
	}
	return "", "", false, nil
}

// storageName looks id up in every driver's containers.json under hostRoot.
func storageName(hostRoot, id string) (name, image string, found bool) {
	for _, driver := range storageDrivers {
		path := under(hostRoot, filepath.Join(storageGraphRoot, driver+"-containers", "containers.json"))
		data, err := readCapped(path, maxJSONFile)
		if err != nil {
			continue
		}
		if name, image, found, err = parseStorageContainers(data, id); err == nil && found {
			return name, image, true
		}
	}
	return "", "", false
}
