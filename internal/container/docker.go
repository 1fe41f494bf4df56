package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"
)

// Kubernetes labels kubelet's dockershim (and cri-dockerd) put on containers.
const (
	labelPodName       = "io.kubernetes.pod.name"
	labelPodNamespace  = "io.kubernetes.pod.namespace"
	labelContainerName = "io.kubernetes.container.name"
)

// dockerContainer is the part shared by the engine API's
// GET /containers/ID/json reply and the daemon's config.v2.json.
type dockerContainer struct {
	Name   string `json:"Name"`
	Config *struct {
		Image  string            `json:"Image"`
		Labels map[string]string `json:"Labels"`
	} `json:"Config"`
}

// parseDockerContainer parses either an engine API inspect reply or a
// config.v2.json, which carry the name, image and labels in the same fields.
// The name is the Kubernetes container name when the container belongs to a
// pod (Pod and Namespace then say which), else Docker's name without its
// leading '/'.
func parseDockerContainer(data []byte) (Info, error) {
	if len(data) > maxJSONFile {
		return Info{}, fmt.Errorf("docker container JSON of %d bytes: %w", len(data), ErrTooLarge)
	}
	var c dockerContainer
	if err := json.Unmarshal(data, &c); err != nil {
		return Info{}, fmt.Errorf("docker container JSON: %w: %w", ErrMalformed, err)
	}
	info := Info{Runtime: Docker, Name: strings.TrimPrefix(c.Name, "/")}
	if c.Config != nil {
		info.Image = c.Config.Image
		l := c.Config.Labels
		if n := l[labelContainerName]; n != "" {
			info.Name = n
		}
		info.Pod = l[labelPodName]
		info.Namespace = l[labelPodNamespace]
	}
	cleanInfo(&info)
	return info, nil
}

func cleanInfo(i *Info) {
	i.Name, i.Pod, i.Namespace, i.Image = capField(i.Name), capField(i.Pod), capField(i.Namespace), capField(i.Image)
}

// errUnknownToEngine is an engine's definite "no such container", as opposed
// to an engine we could not ask.
var errUnknownToEngine = errors.New("no such container")

// dockerAPI asks a Docker engine over its unix socket.
type dockerAPI struct {
	client  *http.Client
	timeout time.Duration
}

func newDockerAPI(socket string, timeout time.Duration) *dockerAPI {
	var d net.Dialer
	return &dockerAPI{
		timeout: timeout,
		client: &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return d.DialContext(ctx, "unix", socket)
			},
			MaxIdleConns:    1,
			IdleConnTimeout: 30 * time.Second,
		}},
	}
}

// inspect fetches GET /containers/ID/json within the timeout. The path is
// unversioned so any engine version answers with its own API version.
func (a *dockerAPI) inspect(id string) (Info, error) {
	ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
	defer cancel()
	// The host part is ignored: the transport always dials the socket.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/containers/"+id+"/json", nil)
	if err != nil {
		return Info{}, fmt.Errorf("docker API request for %s: %w", id, err)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return Info{}, fmt.Errorf("docker API inspect %s: %w", id, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096)) // let the connection be reused
		return Info{}, fmt.Errorf("docker API inspect %s: %w", id, errUnknownToEngine)
	case resp.StatusCode != http.StatusOK:
		return Info{}, fmt.Errorf("docker API inspect %s: status %s", id, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJSONFile+1))
	if err != nil {
		return Info{}, fmt.Errorf("docker API inspect %s: %w", id, err)
	}
	info, err := parseDockerContainer(body)
	if err != nil {
		return Info{}, fmt.Errorf("docker API inspect %s: %w", id, err)
	}
	return info, nil
}

// dockerConfigFromDisk reads <dataDir>/containers/ID/config.v2.json, which
// dockerd writes for every container it knows, running or not.
func dockerConfigFromDisk(dataDir, id string) (Info, error) {
	data, err := readCapped(filepath.Join(dataDir, "containers", id, "config.v2.json"), maxJSONFile)
	if err != nil {
		return Info{}, fmt.Errorf("docker config of %s: %w", id, err)
	}
	info, err := parseDockerContainer(data)
	if err != nil {
		return Info{}, fmt.Errorf("docker config of %s: %w", id, err)
	}
	return info, nil
}
