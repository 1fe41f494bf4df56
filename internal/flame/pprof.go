package flame

import (
	"cmp"
	"fmt"
	"io"
	"path/filepath"
	"slices"

	"github.com/google/pprof/profile"
)

// WritePprof writes p as a gzip-compressed pprof protocol buffer with two
// sample types, samples/count and cpu/nanoseconds (count × period).
//
// Addresses are file offsets inside each module (kernel frames keep their
// kernel address): every mapping starts at 0 with file offset 0, so
// pprof's own symbolizer, given the module file (`pprof
// -symbolize=local,force`), resolves an unsymbolized location to the right
// code. Inlined frames become extra lines of the location of the
// frame they are inlined into, as pprof models them. Unsymbolized frames
// get a function named module+0xoffset rather than none, so every view
// shows where they are.
func WritePprof(w io.Writer, p *Profile) error {
	pp, err := toPprof(p)
	if err != nil {
		return err
	}
	if err := pp.CheckValid(); err != nil {
		return fmt.Errorf("building pprof profile: %w", err)
	}
	return pp.Write(w)
}

type locationKey struct {
	mapping *profile.Mapping
	offset  uint64
	names   string // the function of each line, innermost first
}

type functionKey struct{ name, file string }

// pprofBuilder gives IDs to mappings, locations and functions in the order
// they are first met, so the same Profile always yields the same bytes.
type pprofBuilder struct {
	pp        *profile.Profile
	mappings  map[string][]*profile.Mapping // by file
	symbolic  map[*profile.Mapping]bool     // every frame in it had a symbol
	locations map[locationKey]*profile.Location
	functions map[functionKey]*profile.Function
}

func toPprof(p *Profile) (*profile.Profile, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	period := p.Period.Nanoseconds()
	b := &pprofBuilder{
		pp: &profile.Profile{
			SampleType: []*profile.ValueType{
				{Type: "samples", Unit: "count"},
				{Type: "cpu", Unit: "nanoseconds"},
			},
			DefaultSampleType: "cpu",
			PeriodType:        &profile.ValueType{Type: "cpu", Unit: "nanoseconds"},
			Period:            period,
			DurationNanos:     p.Duration.Nanoseconds(),
			Comments:          comments(p),
		},
		mappings:  make(map[string][]*profile.Mapping),
		symbolic:  make(map[*profile.Mapping]bool),
		locations: make(map[locationKey]*profile.Location),
		functions: make(map[functionKey]*profile.Function),
	}
	if !p.Start.IsZero() {
		b.pp.TimeNanos = p.Start.UnixNano()
	}
	for _, s := range p.Stacks {
		if s.Count == 0 {
			continue
		}
		sample := &profile.Sample{
			Value:    []int64{s.Count, s.Count * period},
			Label:    map[string][]string{"thread": {s.Thread}},
			NumLabel: map[string][]int64{"tid": {int64(s.TID)}},
		}
		// Frames inlined into a caller share its PC: collect them until
		// the frame that owns the PC and make one location of them all.
		var pending []Frame
		for _, f := range s.Frames {
			pending = append(pending, f)
			if f.Inlined {
				continue
			}
			sample.Location = append(sample.Location, b.location(pending))
			pending = pending[:0]
		}
		if len(pending) > 0 { // an outermost frame marked inlined: keep it anyway
			sample.Location = append(sample.Location, b.location(pending))
		}
		b.pp.Sample = append(b.pp.Sample, sample)
	}
	for m, ok := range b.symbolic {
		m.HasFunctions = ok
		m.HasFilenames = ok
		m.HasLineNumbers = ok
		m.HasInlineFrames = ok
	}
	mainFirst(b.pp, p.Process)
	return b.pp, nil
}

// mainFirst moves the process's executable to the first mapping, which
// pprof reports as the profile's "File" and symbolizes as the main
// binary, and the kernel to the last; the stacks met first in a CPU-bound
// thread are often kernel frames.
func mainFirst(pp *profile.Profile, process string) {
	rank := func(m *profile.Mapping) int {
		switch {
		case process != "" && filepath.Base(m.File) == process:
			return 0
		case m.File == kernelModule:
			return 2
		}
		return 1
	}
	slices.SortStableFunc(pp.Mapping, func(a, b *profile.Mapping) int { return cmp.Compare(rank(a), rank(b)) })
	for i, m := range pp.Mapping {
		m.ID = uint64(i + 1)
	}
}

func comments(p *Profile) []string {
	var c []string
	if p.Process != "" || p.PID != 0 {
		c = append(c, fmt.Sprintf("process %s (pid %d)", p.Process, p.PID))
	}
	if p.Container != "" {
		c = append(c, "container "+p.Container)
	}
	for _, m := range p.Missing {
		c = append(c, "no symbols: "+m)
	}
	return c
}

// location returns the location for frames, innermost first, the last of
// which owns the PC.
func (b *pprofBuilder) location(frames []Frame) *profile.Location {
	owner := frames[len(frames)-1]
	m := b.mapping(owner)
	key := locationKey{mapping: m, offset: owner.Offset}
	for _, f := range frames {
		key.names += f.Name() + "\x00"
	}
	if l, ok := b.locations[key]; ok {
		return l
	}
	l := &profile.Location{
		ID:      uint64(len(b.pp.Location) + 1),
		Mapping: m,
		Address: owner.Offset,
	}
	for _, f := range frames {
		if f.Function == "" {
			b.symbolic[m] = false
		}
		l.Line = append(l.Line, profile.Line{Function: b.function(f), Line: int64(f.Line)})
	}
	if owner.Offset >= m.Limit {
		m.Limit = owner.Offset + 1
	}
	b.locations[key] = l
	b.pp.Location = append(b.pp.Location, l)
	return l
}

// mapping returns the mapping of f's module. Frames whose symbolizer did
// not read a build ID join the module's mapping that has one; two build IDs
// for one path (the file replaced while recording) stay two mappings.
func (b *pprofBuilder) mapping(f Frame) *profile.Mapping {
	file := f.Module
	if f.IsKernel() {
		file = kernelModule
	} else if file == "" {
		file = f.ModuleName()
	}
	for _, m := range b.mappings[file] {
		if m.BuildID == f.BuildID || f.BuildID == "" {
			return m
		}
		if m.BuildID == "" {
			m.BuildID = f.BuildID
			return m
		}
	}
	m := &profile.Mapping{
		ID:      uint64(len(b.pp.Mapping) + 1),
		File:    file,
		BuildID: f.BuildID,
	}
	b.mappings[file] = append(b.mappings[file], m)
	b.symbolic[m] = true
	b.pp.Mapping = append(b.pp.Mapping, m)
	return m
}

// function is f's function: its name alone, since pprof keeps the file
// and line in fields of their own (Name adds them to a runtime's frame);
// an address no symbol names, as module+offset.
func (b *pprofBuilder) function(f Frame) *profile.Function {
	name := f.Function
	if name == "" {
		name = f.Name()
	}
	key := functionKey{name: name, file: f.File}
	if fn, ok := b.functions[key]; ok {
		return fn
	}
	fn := &profile.Function{
		ID:         uint64(len(b.pp.Function) + 1),
		Name:       key.name,
		SystemName: key.name,
		Filename:   key.file,
	}
	b.functions[key] = fn
	b.pp.Function = append(b.pp.Function, fn)
	return fn
}
