package container

import (
	"errors"
	"strings"
	"unicode"
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
	ErrTooLarge = errors.New("too large")
)

// maxField caps every string we hand back. Names come from files that
// containers' creators (and, for cgroup paths, sometimes unprivileged users)
// control, and they end up on a terminal.
const maxField = 256

// clean makes s safe to print: invalid UTF-8 and control characters become
// '?', so a name cannot carry terminal escape sequences, and it is cut to
// maxField bytes on a rune boundary.
func clean(s string) string {
	ok := len(s) <= maxField
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) {
			r = '?'
		}
		if b.Len()+utf8.RuneLen(r) > maxField {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}
