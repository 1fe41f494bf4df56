package syscalls

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// tracerFunc lets a test decide what a mechanism answers; the mechanisms
// themselves are tested for real in packages ebpf and ptrace.
type tracerFunc func() (*Profile, error)

func (f tracerFunc) Trace(context.Context, int, Options) (*Profile, error) { return f() }

func TestTraceFirst(t *testing.T) {
	works := func() Tracer { return tracerFunc(func() (*Profile, error) { return &Profile{}, nil }) }
	unsupported := func() Tracer {
		return tracerFunc(func() (*Profile, error) { return nil, fmt.Errorf("BPF: %w", ErrNotSupported) })
	}
	failing := func() Tracer { return tracerFunc(func() (*Profile, error) { return nil, errors.New("target gone") }) }
	denied := func(int) error { return errors.New("ptrace denied") }
	tests := []struct {
		name       string
		candidates []Candidate
		mechanism  Mechanism
		err        string // "" for none
		notes      string
	}{
		{"first works", []Candidate{{EBPF, works, nil}, {Ptrace, works, nil}}, EBPF, "", ""},
		{"falls back", []Candidate{{EBPF, unsupported, nil}, {Ptrace, works, nil}}, Ptrace, "", "BPF: not supported by this kernel -> ptrace;"},
		{"last unsupported", []Candidate{{EBPF, unsupported, nil}}, EBPF, "not supported", ""},
		{"other errors do not fall back", []Candidate{{EBPF, failing, nil}, {Ptrace, works, nil}}, EBPF, "target gone", ""},
		{"check refuses", []Candidate{{EBPF, unsupported, nil}, {Ptrace, works, denied}}, Ptrace, "ptrace denied", "BPF: not supported by this kernel -> ptrace;"},
		{"nothing to try", nil, "", "no tracing mechanism", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var notes strings.Builder
			p, m, err := TraceFirst(context.Background(), 1, Options{}, tt.candidates, func(err error, next Mechanism) {
				fmt.Fprintf(&notes, "%v -> %s;", err, next)
			})
			if m != tt.mechanism {
				t.Errorf("mechanism %q, want %q", m, tt.mechanism)
			}
			if tt.err == "" && (err != nil || p == nil) {
				t.Errorf("profile %v, error %v; want a profile", p, err)
			}
			if tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Errorf("error %v, want %q", err, tt.err)
			}
			if notes.String() != tt.notes {
				t.Errorf("notes %q, want %q", notes.String(), tt.notes)
			}
		})
	}
}
