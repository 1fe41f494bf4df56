package flame

import (
	"cmp"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"slices"
	"time"
)

//go:embed flame.html.tmpl
var htmlSource string

var htmlTemplate = template.Must(template.New("flame").Parse(htmlSource))

// node is one box of the flame graph: a frame reached by one path from
// the root, with the samples of all stacks through it.
type node struct {
	Name     string  `json:"name"`
	Module   string  `json:"module,omitempty"`
	Kind     string  `json:"kind"` // root, thread, or a Kind
	Value    int64   `json:"value"`
	Children []*node `json:"children,omitempty"`

	index map[nodeKey]*node
}

type nodeKey struct{ name, module, kind string }

func (n *node) child(name, module, kind string) *node {
	k := nodeKey{name, module, kind}
	if c, ok := n.index[k]; ok {
		return c
	}
	if n.index == nil {
		n.index = make(map[nodeKey]*node)
	}
	c := &node{Name: name, Module: module, Kind: kind}
	n.index[k] = c
	n.Children = append(n.Children, c)
	return c
}

// sortTree orders children by name, as flamegraph.pl does, so that the
// same profile always draws (and serializes) the same way.
func (n *node) sortTree() {
	slices.SortFunc(n.Children, func(a, b *node) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Module, b.Module), cmp.Compare(a.Kind, b.Kind))
	})
	for _, c := range n.Children {
		c.sortTree()
	}
}

// htmlData is what the page's script reads.
type htmlData struct {
	Process   string   `json:"process,omitempty"`
	PID       int      `json:"pid,omitempty"`
	Container string   `json:"container,omitempty"`
	Start     string   `json:"start,omitempty"`
	Duration  string   `json:"duration,omitempty"`
	Period    string   `json:"period,omitempty"`
	PeriodNS  int64    `json:"periodNs"`
	Total     int64    `json:"total"`
	Missing   []string `json:"missing,omitempty"`
	Root      *node    `json:"root"`
}

func newHTMLData(p *Profile) *htmlData {
	root := &node{Name: "all", Kind: "root"}
	for _, s := range p.Stacks {
		if s.Count == 0 {
			continue
		}
		root.Value += s.Count
		n := root.child(s.threadName(), "", "thread")
		n.Value += s.Count
		for i := len(s.Frames) - 1; i >= 0; i-- {
			f := s.Frames[i]
			n = n.child(f.Label(), f.ModuleName(), string(kindOf(f)))
			n.Value += s.Count
		}
	}
	root.sortTree()
	d := &htmlData{
		Process:   p.Process,
		PID:       p.PID,
		Container: p.Container,
		PeriodNS:  p.Period.Nanoseconds(),
		Total:     root.Value,
		Missing:   p.Missing,
		Root:      root,
	}
	if !p.Start.IsZero() {
		d.Start = p.Start.UTC().Format(time.RFC3339)
	}
	if p.Duration > 0 {
		d.Duration = p.Duration.String()
	}
	if p.Period > 0 {
		d.Period = p.Period.String()
	}
	return d
}

// marshalHTMLData encodes the page's data. json.Marshal escapes <, > and
// & (and U+2028/9), so no name from a target, however hostile, can close
// the <script> element it is embedded in.
func marshalHTMLData(p *Profile) ([]byte, error) {
	b, err := json.Marshal(newHTMLData(p))
	if err != nil {
		return nil, fmt.Errorf("encoding flame graph data: %w", err)
	}
	return b, nil
}

// WriteHTML writes p as one self-contained HTML page: an interactive
// flame graph (zoom, search, tooltips) that needs no network, with its
// style, script and data inline.
func WriteHTML(w io.Writer, p *Profile) error {
	if err := p.check(); err != nil {
		return err
	}
	data, err := marshalHTMLData(p)
	if err != nil {
		return err
	}
	title := "cpuwhy profile"
	if p.Process != "" {
		title = fmt.Sprintf("cpuwhy: %s (pid %d)", p.Process, p.PID)
	}
	return htmlTemplate.Execute(w, struct {
		Title string
		// Safe to insert raw: see marshalHTMLData.
		Data template.JS
	}{title, template.JS(data)})
}
