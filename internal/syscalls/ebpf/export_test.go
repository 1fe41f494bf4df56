package ebpf

import (
	"github.com/cilium/ebpf"

	"github.com/cpuwhy/cpuwhy/internal/syscalls"
)

// WithHooks returns t with test hooks run inside the traced window.
func WithHooks(t *Tracer, attached func([]ebpf.ProgramID), detaching func()) *Tracer {
	t.attached, t.detaching = attached, detaching
	return t
}

// LoadError loads the programs for pid with opts as Trace would after
// validating them, and returns only the error: it lets a test ask for a
// table size that Validate would refuse, to see how the kernel's refusal
// is reported.
func LoadError(pid int, opts syscalls.Options) error {
	objs, err := load(pid, withDefaults(opts))
	if err == nil {
		objs.Close()
	}
	return err
}
