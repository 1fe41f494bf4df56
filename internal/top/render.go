package top

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/cpuwhy/cpuwhy/internal/escape"
)

// WriteJSON writes the frame as one line of JSON, so that batch mode with
// several iterations gives JSON Lines.
func WriteJSON(w io.Writer, f *Frame) error {
	if f.Processes == nil {
		f.Processes = []Process{}
	}
	b, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("encoding frame: %w", err)
	}
	b = append(escape.JSON(b), '\n')
	_, err = w.Write(b)
	return err
}

// TextOptions shape the text rendering.
type TextOptions struct {
	Limit int // processes shown; 0 for all
	Width int // command column width; 0 for no limit
}

// WriteText writes the frame as a table in the manner of `top -b -H`: one
// line per process and, indented below it, one per thread when the frame
// has threads. Numbers are right-aligned, names left-aligned, and the
// command comes last so that it can run long. Names, command lines and
// container labels are escaped (package escape) before columns are
// measured and cut.
func WriteText(w io.Writer, f *Frame, o TextOptions) error {
	procs := f.Processes
	if o.Limit > 0 && len(procs) > o.Limit {
		procs = procs[:o.Limit]
	}
	cw := len("CONTAINER")
	for i := range procs {
		cw = max(cw, min(utf8.RuneCountInString(escape.String(ContainerLabel(&procs[i]))), maxContainerWidth))
	}
	bw := bufio.NewWriter(w)
	escape.Fprintf(bw, "cpuwhy top - %s, interval %.1fs, %d processes, %.1f%% CPU in all (100%% = one core)\n",
		f.Time.Format("15:04:05"), f.Interval, len(f.Processes), f.Total())
	escape.Fprintf(bw, "%8s %7s %6s %6s %6s %s %5s %6s  %-*s  %s\n",
		"PID", "NSPID", "%CPU", "%USR", "%SYS", "S", "THR", "RSS", cw, "CONTAINER", "COMMAND")
	for i := range procs {
		p := &procs[i]
		escape.Fprintf(bw, "%8d %7d %6.1f %6.1f %6.1f %-1s %5d %6s  %-*s  %s\n",
			p.PID, p.NsPID, p.CPU, p.User, p.System, p.State, p.NumThreads,
			HumanBytes(p.RSSBytes), cw, fit(escape.String(ContainerLabel(p)), cw), fit(escape.String(Command(p)), o.Width))
		for _, t := range p.Threads {
			where := t.Syscall
			if where == "" {
				where = t.Wchan
			}
			escape.Fprintf(bw, "%8d %7s %6.1f %6.1f %6.1f %-1s %5s %6s  %-*s    %s\n",
				t.TID, "", t.CPU, t.User, t.System, t.State, "", "", cw, "", fit(escape.String(threadLabel(t.Name, where)), o.Width))
		}
	}
	return bw.Flush()
}

// maxContainerWidth keeps a long pod path from pushing commands off screen.
const maxContainerWidth = 40

func threadLabel(name, where string) string {
	if where == "" {
		return name
	}
	return name + " [" + where + "]"
}

// Command is the process's command line, or its name in brackets when it
// has none (a zombie, or a process whose arguments were cleared).
func Command(p *Process) string {
	if p.Cmdline != "" {
		return p.Cmdline
	}
	return "[" + p.Name + "]"
}

// ContainerLabel is "runtime:name" (or the short id when unnamed), "-" for
// host processes.
func ContainerLabel(p *Process) string {
	c := p.Container
	if c == nil {
		return "-"
	}
	name := c.Name
	if name == "" {
		name = ShortID(c.ID)
	}
	if c.Pod != "" {
		name = c.Namespace + "/" + c.Pod + "/" + name
	}
	return string(c.Runtime) + ":" + name
}

// ShortID is the first 12 characters of a container id, as docker prints.
func ShortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// HumanBytes formats a size as top does: 4.1M, 812K, 1.2G.
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	v := float64(n)
	for _, suffix := range []string{"K", "M", "G", "T"} {
		v /= unit
		if v < unit || suffix == "T" {
			if v < 10 {
				return fmt.Sprintf("%.1f%s", v, suffix)
			}
			return fmt.Sprintf("%.0f%s", v, suffix)
		}
	}
	return ""
}

// fit shortens s to width characters, marking the cut with an ellipsis.
func fit(s string, width int) string {
	if width <= 0 || utf8.RuneCountInString(s) <= width {
		return s
	}
	r := []rune(s)
	if width < 2 {
		return string(r[:width])
	}
	return string(r[:width-1]) + "…"
}
