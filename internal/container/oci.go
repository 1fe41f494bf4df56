package container

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// Annotations containerd's CRI plugin puts in a container's OCI config.
const (
	annCRIContainerName    = "io.kubernetes.cri.container-name"
	annCRIContainerType    = "io.kubernetes.cri.container-type"
	annCRISandboxName      = "io.kubernetes.cri.sandbox-name"
	annCRISandboxNamespace = "io.kubernetes.cri.sandbox-namespace"
	annCRIImageName        = "io.kubernetes.cri.image-name"
	annNerdctlName         = "nerdctl/name"

	// CRI-O uses the Kubernetes label names as annotations.
	annCRIOImageName = "io.kubernetes.cri-o.ImageName"
)

// sandboxName is what we call a pod's sandbox (pause) container, as
// dockershim and crictl do; it has no container name of its own.
const sandboxName = "POD"

// parseOCIAnnotations returns the annotations of an OCI runtime config.json.
func parseOCIAnnotations(data []byte) (map[string]string, error) {
	if len(data) > maxJSONFile {
		return nil, fmt.Errorf("OCI config of %d bytes: %w", len(data), ErrTooLarge)
	}
	var spec struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, fmt.Errorf("OCI config: %w: %w", ErrMalformed, err)
	}
	return spec.Annotations, nil
}

// containerdInfo names a containerd container from its bundle annotations:
// the CRI plugin's for Kubernetes, nerdctl's otherwise. Docker's own
// containers (namespace "moby") carry neither.
func containerdInfo(ann map[string]string) Info {
	info := Info{
		Runtime:   Containerd,
		Name:      ann[annCRIContainerName],
		Pod:       ann[annCRISandboxName],
		Namespace: ann[annCRISandboxNamespace],
		Image:     ann[annCRIImageName],
	}
	if info.Name == "" && ann[annCRIContainerType] == "sandbox" {
		info.Name = sandboxName
	}
	if info.Name == "" {
		info.Name = ann[annNerdctlName]
	}
	cleanInfo(&info)
	return info
}

// crioInfo names a CRI-O container from the annotations of its config.json.
func crioInfo(ann map[string]string) Info {
	info := Info{
		Runtime:   CRIO,
		Name:      ann[labelContainerName],
		Pod:       ann[labelPodName],
		Namespace: ann[labelPodNamespace],
		Image:     ann[annCRIOImageName],
	}
	cleanInfo(&info)
	return info
}

// containerdTaskDirs hold one directory per containerd namespace, each with
// one OCI bundle per running container: the v2 shim layout, the v1 layout of
// containerd 1.0-1.x, and k3s's private containerd.
var containerdTaskDirs = []string{
	"/run/containerd/io.containerd.runtime.v2.task",
	"/run/containerd/io.containerd.runtime.v1.linux",
	"/run/k3s/containerd/io.containerd.runtime.v2.task",
}

// findContainerdBundle returns the containerd namespace and config.json bytes
// of a running container's bundle. The namespace is not in the cgroup path,
// so every namespace is tried; there are a handful at most. Namespaces are
// tried in name order so the result does not depend on directory order.
func findContainerdBundle(hostRoot, id string) (ns string, config []byte, err error) {
	for _, dir := range containerdTaskDirs {
		dir = under(hostRoot, dir)
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		names := make([]string, 0, len(entries))
		for _, e := range entries {
			names = append(names, e.Name())
		}
		sort.Strings(names)
		for _, ns := range names {
			data, err := readCapped(filepath.Join(dir, ns, id, "config.json"), maxJSONFile)
			if err == nil {
				return ns, data, nil
			}
			if !os.IsNotExist(err) {
				return "", nil, fmt.Errorf("containerd bundle of %s: %w", id, err)
			}
		}
	}
	return "", nil, fmt.Errorf("containerd bundle of %s: %w", id, os.ErrNotExist)
}
