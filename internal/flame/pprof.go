package flame

import (
	"fmt"
	"io"

	"github.com/google/pprof/profile"
)

// WritePprof writes p as a gzip-compressed pprof protocol buffer with two
// sample types, samples/count and cpu/nanoseconds (count × period).
//
// Addresses are file offsets inside each module: every mapping starts at
// 0 with file offset 0, so pprof's own symbolizer, given the module file
// (`pprof -symbolize=local,force`), resolves an unsymbolized location to the
// right code. Inlined frames become extra lines of the location of the
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

type mappingKey struct{ file, buildID string }

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
	mappings  map[mappingKey]*profile.Mapping
	symbolic  map[*profile.Mapping]bool // every frame in it had a symbol
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
		mappings:  make(map[mappingKey]*profile.Mapping),
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
	return b.pp, nil
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

func (b *pprofBuilder) mapping(f Frame) *profile.Mapping {
	key := mappingKey{file: f.Module, buildID: f.BuildID}
	if f.Kernel {
		key = mappingKey{file: kernelModule, buildID: f.BuildID}
	} else if key.file == "" {
		key.file = f.moduleName()
	}
	if m, ok := b.mappings[key]; ok {
		return m
	}
	m := &profile.Mapping{
		ID:      uint64(len(b.pp.Mapping) + 1),
		File:    key.file,
		BuildID: key.buildID,
	}
	b.mappings[key] = m
	b.symbolic[m] = true
	b.pp.Mapping = append(b.pp.Mapping, m)
	return m
}

func (b *pprofBuilder) function(f Frame) *profile.Function {
	key := functionKey{name: f.Name(), file: f.File}
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
