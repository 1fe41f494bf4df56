package syscalls

import (
	"context"
	"errors"
)

// Candidate is a tracer that may be used, and its mechanism.
type Candidate struct {
	Mechanism Mechanism
	New       func() Tracer
	// Check, when set, is asked before the tracer is used: ptrace needs a
	// permission that is best tested, with a clear error, before the
	// target is stopped.
	Check func(pid int) error
}

// errNoCandidate is TraceFirst's error when it is given nothing to try.
var errNoCandidate = errors.New("no tracing mechanism to try")

// TraceFirst traces pid with the first candidate this kernel and these
// privileges support: eBPF where it loads, else ptrace. For each candidate
// passed over, note (when set) is told why and which mechanism comes next,
// because falling back to ptrace slows the target down and the user must
// hear it. It returns the mechanism the profile was made with.
func TraceFirst(ctx context.Context, pid int, opts Options, candidates []Candidate, note func(err error, next Mechanism)) (*Profile, Mechanism, error) {
	for i, c := range candidates {
		if c.Check != nil {
			if err := c.Check(pid); err != nil {
				return nil, c.Mechanism, err
			}
		}
		p, err := c.New().Trace(ctx, pid, opts)
		if errors.Is(err, ErrNotSupported) && i+1 < len(candidates) {
			if note != nil {
				note(err, candidates[i+1].Mechanism)
			}
			continue
		}
		return p, c.Mechanism, err
	}
	return nil, "", errNoCandidate
}
