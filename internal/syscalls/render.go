package syscalls

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/escape"
)

// WriteJSON writes the report as one JSON object.
func WriteJSON(w io.Writer, r *Report) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encoding report: %w", err)
	}
	_, err = w.Write(append(escape.JSON(b), '\n'))
	return err
}

// TextOptions shape the text report.
type TextOptions struct {
	Threads int // threads shown; 0 for all
}

// WriteText writes the report in the manner of `strace -c`, once for the
// process and once per thread, with the errno split and the fds. What the
// target named (its name, threads, fds, symbols) is escaped: every line is
// written through package escape.
func WriteText(w io.Writer, r *Report, o TextOptions) error {
	bw := bufio.NewWriter(w)
	title := fmt.Sprintf("PID %d", r.PID)
	if r.Name != "" {
		title += " (" + r.Name + ")"
	}
	if c := r.Container; c != nil {
		name := c.Name
		if name == "" && len(c.ID) >= 12 {
			name = c.ID[:12]
		}
		title += fmt.Sprintf(" in %s container %s as PID %d", c.Runtime, name, r.NsPID)
	}
	escape.Fprintf(bw, "cpuwhy syscalls: %s, %.1fs, %s: %s\n", title, r.Duration, r.Mechanism, callsLine(r))
	if r.Picked != nil {
		escape.Fprintf(bw, "%s\n", r.Picked)
	}
	if r.Ended != "" {
		escape.Fprintf(bw, "note: partial window: %s\n", r.Ended)
	}
	if line := r.Counting.String(); line != "" {
		escape.Fprintf(bw, "note: %s\n", line)
	}
	if r.Dropped > 0 {
		escape.Fprintf(bw, "note: %s calls not counted: the aggregation table was full (raise --max-keys)\n", count(r.Dropped))
	}
	for _, n := range r.Notes {
		escape.Fprintf(bw, "note: %s\n", n)
	}
	escape.Fprintf(bw, "\n")
	escape.Fprintf(bw, "process\n")
	table(bw, r.Syscalls)
	threads := r.Threads
	if o.Threads > 0 && len(threads) > o.Threads {
		threads = threads[:o.Threads]
	}
	for _, t := range threads {
		escape.Fprintf(bw, "\nthread %d (%s): %s, %s/s", t.TID, t.Name, calls(t.Calls), rate(float64(t.Calls)/max(r.Duration, 1e-9)))
		if t.TotalNs > 0 {
			escape.Fprintf(bw, ", %s in syscalls", duration(t.TotalNs))
		}
		escape.Fprintf(bw, "\n")
		table(bw, t.Syscalls)
	}
	if n := len(r.Threads) - len(threads); n > 0 {
		escape.Fprintf(bw, "\n(%d more threads; --json lists them all)\n", n)
	}
	if len(r.Stacks) > 0 {
		escape.Fprintf(bw, "\ncall sites (user stack at syscall entry, innermost first)\n")
		for i, cs := range r.Stacks {
			if i == 5 {
				break
			}
			escape.Fprintf(bw, "  %s calls of %s by %d (%s):\n", count(cs.Count), cs.Name, cs.TID, cs.Thread)
			frames := cs.Frames
			if len(frames) == 0 {
				for _, pc := range cs.PCs {
					frames = append(frames, fmt.Sprintf("0x%x", pc))
				}
			}
			for _, f := range frames {
				escape.Fprintf(bw, "      %s\n", f)
			}
		}
	}
	return bw.Flush()
}

// callsLine is the header's account of the calls: how many, how fast, and
// how many of them were timed, counted rather than described as a ratio,
// so that it cannot contradict itself ("1 call in 16 timed: 0 calls"); how
// the timed ones were chosen is a note of the tracer's.
func callsLine(r *Report) string {
	if r.Calls == 0 {
		return "no calls"
	}
	line := fmt.Sprintf("%s, %s/s", calls(r.Calls), rate(float64(r.Calls)/max(r.Duration, 1e-9)))
	var timed uint64
	for _, s := range r.Syscalls {
		timed += s.Timed
	}
	switch {
	case r.TimeEvery == 0:
		return line + ", none timed (--time-every 0)"
	case timed == 0:
		return line + ", none of them timed"
	case timed >= r.Calls:
		return line + ", every one timed"
	}
	return line + ", " + count(timed) + " of them timed"
}

// calls is a count of calls in words: "1 call", "3.00M calls".
func calls(n uint64) string {
	if n == 1 {
		return "1 call"
	}
	return count(n) + " calls"
}

func table(w io.Writer, list []Syscall) {
	escape.Fprintf(w, "  %6s %9s %9s %9s %9s %9s %9s  %-16s %s\n", "%time", "total", "mean", "p50", "p99", "calls", "rate/s", "syscall", "results and fds")
	for _, s := range list {
		escape.Fprintf(w, "  %6.1f %9s %9s %9s %9s %9s %9s  %-16s %s\n",
			s.Share, durOrDash(s.TotalNs), durOrDash(s.MeanNs), durOrDash(s.P50Ns), durOrDash(s.P99Ns),
			count(s.Count), rate(s.Rate), s.Name, results(s))
	}
}

// results is "EAGAIN 100%" or "ok 60%, EINTR 40%", then the fds.
func results(s Syscall) string {
	type part struct {
		name string
		n    uint64
	}
	var parts []part
	if s.OK > 0 {
		parts = append(parts, part{"ok", s.OK})
	}
	for name, n := range s.Errors {
		parts = append(parts, part{name, n})
	}
	slices.SortFunc(parts, func(a, b part) int {
		if a.n != b.n {
			if a.n > b.n {
				return -1
			}
			return 1
		}
		return strings.Compare(a.name, b.name)
	})
	var out []string
	for _, p := range parts {
		out = append(out, fmt.Sprintf("%s %s", p.name, percent(p.n, s.Count)))
	}
	text := strings.Join(out, ", ")
	for _, f := range s.FDs {
		desc := f.Desc
		if desc == "" {
			desc = "?"
		}
		text += fmt.Sprintf("; fd %d %s %s", f.FD, desc, percent(f.Count, s.Count))
	}
	if more := s.FDCount - len(s.FDs); more > 0 {
		text += fmt.Sprintf("; %d more fds", more)
	}
	return text
}

func percent(n, total uint64) string {
	if total == 0 {
		return "0%"
	}
	p := 100 * float64(n) / float64(total)
	if p < 0.05 {
		return "<0.1%"
	}
	if p >= 99.95 || p == float64(int(p)) {
		return fmt.Sprintf("%.0f%%", p)
	}
	return fmt.Sprintf("%.1f%%", p)
}

// count formats a count compactly: 912, 12.3K, 3.01M.
func count(n uint64) string {
	switch {
	case n >= 10_000_000:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	case n >= 1_000_000:
		return fmt.Sprintf("%.2fM", float64(n)/1e6)
	case n >= 10_000:
		return fmt.Sprintf("%.1fK", float64(n)/1e3)
	}
	return fmt.Sprintf("%d", n)
}

func rate(r float64) string {
	if r < 10 {
		return fmt.Sprintf("%.1f", r)
	}
	return count(uint64(r + 0.5))
}

func durOrDash(ns uint64) string {
	if ns == 0 {
		return "-"
	}
	return duration(ns)
}

// duration formats nanoseconds with three significant digits.
func duration(ns uint64) string {
	d := time.Duration(ns)
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", ns)
	case d < time.Millisecond:
		return fmt.Sprintf("%.3gµs", float64(ns)/1e3)
	case d < time.Second:
		return fmt.Sprintf("%.3gms", float64(ns)/1e6)
	}
	return fmt.Sprintf("%.3gs", d.Seconds())
}
