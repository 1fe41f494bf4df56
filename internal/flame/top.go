package flame

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/escape"
)

// funcKey identifies a function across stacks for the summary: the same
// name in two modules (two copies of a static helper) stays two rows.
type funcKey struct {
	name, module string
	kernel       bool
}

type funcStat struct {
	funcKey
	self, total int64
}

// topStackDepth is how many frames of a stack WriteTop prints.
const topStackDepth = 10

// WriteTop prints a terminal summary of p: the n hottest functions by
// self samples, with self and total share, then the n hottest stacks.
// A function that recurses counts once per stack in its total. An n of 0
// or less prints the totals alone: n comes from a command line, and no
// value of it may stop the summary (the profile is already recorded).
func WriteTop(w io.Writer, p *Profile, n int) error {
	if err := p.check(); err != nil {
		return err
	}
	n = max(n, 0)
	total := p.Total()
	escape.Fprintf(w, "%d samples", total)
	if p.Period > 0 {
		escape.Fprintf(w, " every %v (%v of CPU)", readable(p.Period), readable(p.Period*time.Duration(total)))
	}
	if p.Duration > 0 {
		escape.Fprintf(w, " in %v", readable(p.Duration))
	}
	escape.Fprintf(w, "\n")
	if total == 0 {
		_, err := escape.Fprintf(w, "no samples: the target did not run on a CPU while recorded\n")
		return err
	}

	stats := make(map[funcKey]*funcStat)
	stat := func(f Frame) *funcStat {
		k := funcKey{name: f.Name(), module: f.ModuleName(), kernel: f.IsKernel()}
		s, ok := stats[k]
		if !ok {
			s = &funcStat{funcKey: k}
			stats[k] = s
		}
		return s
	}
	for _, s := range p.Stacks {
		if len(s.Frames) == 0 {
			continue
		}
		stat(s.Frames[0]).self += s.Count
		seen := make(map[funcKey]bool, len(s.Frames))
		for _, f := range s.Frames {
			st := stat(f)
			if !seen[st.funcKey] {
				seen[st.funcKey] = true
				st.total += s.Count
			}
		}
	}
	funcs := make([]*funcStat, 0, len(stats))
	for _, s := range stats {
		funcs = append(funcs, s)
	}
	slices.SortFunc(funcs, func(a, b *funcStat) int {
		return cmp.Or(cmp.Compare(b.self, a.self), cmp.Compare(b.total, a.total),
			cmp.Compare(a.name, b.name), cmp.Compare(a.module, b.module))
	})
	pct := func(v int64) string { return fmt.Sprintf("%5.1f%%", 100*float64(v)/float64(total)) }

	escape.Fprintf(w, "\nHottest functions:\n")
	escape.Fprintf(w, "  SELF   TOTAL  FUNCTION (MODULE)\n")
	for _, s := range funcs[:min(n, len(funcs))] {
		escape.Fprintf(w, "%s  %s  %s (%s)\n", pct(s.self), pct(s.total), s.name, s.module)
	}

	escape.Fprintf(w, "\nHottest stacks (innermost first):\n")
	stacks := Merge(byName(p.Stacks))
	for _, s := range stacks[:min(n, len(stacks))] {
		// The outermost frames (start_thread, main) say least about
		// where the time goes and would wrap every line.
		names := make([]string, 0, topStackDepth+1)
		for i, f := range s.Frames {
			if i == topStackDepth {
				names = append(names, fmt.Sprintf("(%d more)", len(s.Frames)-i))
				break
			}
			names = append(names, f.Label())
		}
		escape.Fprintf(w, "%s  %s: %s\n", pct(s.Count), s.threadName(), strings.Join(names, " <- "))
	}
	for i, m := range p.Missing {
		if i == 0 {
			escape.Fprintf(w, "\nWithout symbols:\n")
		}
		escape.Fprintf(w, "  %s\n", m)
	}
	return nil
}

// readable rounds d to three significant digits: a period of 1/99 s is
// 10.1ms to a reader, not 10.10101ms, and a window asked for as 10 s is
// 10s, not the 10.007646552s the timer measured.
func readable(d time.Duration) time.Duration {
	unit := time.Duration(1)
	for d/unit >= 1000 {
		unit *= 10
	}
	return d.Round(unit)
}

// byName keeps of each frame only the name a summary line prints, so that
// Merge makes one line of the stacks that differ only in what the line
// does not show: the address or source line inside a function, which
// differ from sample to sample in any hot loop.
func byName(stacks []Stack) []Stack {
	named := make([]Stack, len(stacks))
	for i, s := range stacks {
		frames := make([]Frame, len(s.Frames))
		for j, f := range s.Frames {
			frames[j] = Frame{Function: f.Name()}
		}
		named[i] = Stack{Frames: frames, Thread: s.Thread, TID: s.TID, Count: s.Count}
	}
	return named
}
