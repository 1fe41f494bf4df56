package container

import (
	"errors"
	"github.com/cpuwhy/cpuwhy/internal/proc"
	"unicode/utf8"
)

// Runtime names the software that created a container.
type Runtime string

// The runtimes ParseCgroup recognises. None is the host.
const (
	None       Runtime = ""
	Docker     Runtime = "docker"
	Containerd Runtime = "containerd"
	CRIO       Runtime = "cri-o"
	Podman     Runtime = "podman"
	Nspawn     Runtime = "systemd-nspawn"
	LXC        Runtime = "lxc"
)

// Info identifies a container. Callers JSON-encode it as is.
type Info struct {
	Runtime   Runtime `json:"runtime"`
	ID        string  `json:"id"`
	Name      string  `json:"name"`
	Pod       string  `json:"pod,omitempty"`       // Kubernetes pod name, from CRI labels/annotations
	Namespace string  `json:"namespace,omitempty"` // Kubernetes namespace
	Image     string  `json:"image,omitempty"`     // where cheaply known
}

var (
	// ErrMalformed means a file did not have the format its kernel or engine
	// writes; the wrapping error says which file and where.
	ErrMalformed = errors.New("malformed")
	// ErrTooLarge means a file was larger than any genuine one would be, so
	// it was not read; the cap protects us from hostile or corrupt files.
	ErrTooLarge = proc.ErrTooLarge
)

// maxField caps every string we hand back. Names come from files that
// containers' creators (and, for cgroup paths, sometimes unprivileged users)
// control.
const maxField = 256

// capField cuts s to maxField bytes on a rune boundary. It does not escape
// it: an Info keeps the bytes its creator chose, for JSON and for matching
// --container, and a text output escapes them where it writes them
// (package escape), as it does every name a target chose.
func capField(s string) string {
	if len(s) <= maxField {
		return s
	}
	cut := maxField
	for i := 0; i < utf8.UTFMax-1 && cut > 0 && !utf8.RuneStart(s[cut]); i++ {
		cut--
	}
	return s[:cut]
}
