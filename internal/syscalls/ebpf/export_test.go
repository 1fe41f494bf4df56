package ebpf

import "github.com/cilium/ebpf"

// WithHooks returns t with test hooks run inside the traced window.
func WithHooks(t *Tracer, attached func([]ebpf.ProgramID), detaching func()) *Tracer {
	t.attached, t.detaching = attached, detaching
	return t
}
