package flame

import (
	"bufio"
	"io"
	"slices"
	"strings"

	"github.com/cpuwhy/cpuwhy/internal/escape"
)

// foldedName is a frame as flamegraph.pl reads it: ';' separates frames
// and a line ends at a newline, so neither may appear inside a name;
// kernel frames carry the "_[k]" suffix that selects the kernel palette.
func foldedName(f Frame) string {
	name := foldedText(f.Label())
	if f.IsKernel() {
		name += "_[k]"
	}
	return name
}

// foldedText is a name a target chose (a symbol, a thread name) as the
// folded format can hold it: escaped (package escape), since the file is
// text that is read on terminals too and a newline would forge a stack,
// and with ';' made ':'.
func foldedText(s string) string {
	return strings.ReplaceAll(escape.String(s), ";", ":")
}

// WriteFolded writes p in the collapsed format of stackcollapse-perf.pl
// (one "thread-tid;outermost;...;innermost count" line per stack), sorted
// so the output is byte-for-byte stable, with identical lines merged.
func WriteFolded(w io.Writer, p *Profile) error {
	if err := p.check(); err != nil {
		return err
	}
	counts := make(map[string]int64)
	for _, s := range p.Stacks {
		if s.Count == 0 {
			continue
		}
		parts := make([]string, 0, len(s.Frames)+1)
		parts = append(parts, foldedText(s.threadName()))
		for i := len(s.Frames) - 1; i >= 0; i-- {
			parts = append(parts, foldedName(s.Frames[i]))
		}
		counts[strings.Join(parts, ";")] += s.Count
	}
	lines := make([]string, 0, len(counts))
	for l := range counts {
		lines = append(lines, l)
	}
	slices.Sort(lines)
	bw := bufio.NewWriter(w)
	for _, l := range lines {
		escape.Fprintf(bw, "%s %d\n", l, counts[l])
	}
	return bw.Flush()
}
