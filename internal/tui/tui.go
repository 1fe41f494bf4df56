package tui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/cpuwhy/cpuwhy/internal/escape"
	"github.com/cpuwhy/cpuwhy/internal/top"
)

// Options configure the live view.
type Options struct {
	Sampler  *top.Sampler
	Spec     top.Spec                // what the top level scans
	Keep     func(*top.Process) bool // the command line's target filter
	Interval time.Duration
	Sort     top.SortKey
	In       io.Reader
	Out      io.Writer
}

// Run shows the live view until the user quits or ctx ends.
func Run(ctx context.Context, o Options) error {
	if err := o.Sampler.Prime(o.Spec); err != nil {
		return err
	}
	m := &model{opts: o, sort: o.Sort, status: "measuring…"}
	p := tea.NewProgram(m, tea.WithContext(ctx), tea.WithInput(o.In), tea.WithOutput(o.Out))
	_, err := p.Run()
	if errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("live view: %w", err)
	}
	return m.err
}

type frameMsg struct {
	frame *top.Frame
	err   error
	gen   int // the view generation it was measured for
}

type model struct {
	opts   Options
	frame  *top.Frame
	sort   top.SortKey
	filter string
	typing bool // editing the filter
	cursor int
	// drill is the PID whose threads are shown; 0 for the process table.
	drill     int
	drillName string
	gen       int // bumped when what is scanned changes
	width     int
	height    int
	status    string
	err       error
}

func (m *model) Init() tea.Cmd { return m.tick() }

func (m *model) spec() top.Spec {
	if m.drill != 0 {
		return top.Spec{Threads: true, PIDs: []int{m.drill}}
	}
	return m.opts.Spec
}

// tick measures the next frame after one interval. Only one measurement is
// in flight at a time, so the Sampler is never used concurrently.
func (m *model) tick() tea.Cmd {
	gen, spec, s := m.gen, m.spec(), m.opts.Sampler
	return tea.Tick(m.opts.Interval, func(time.Time) tea.Msg {
		f, err := s.Next(spec)
		return frameMsg{frame: f, err: err, gen: gen}
	})
}

func (m *model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
	case frameMsg:
		if msg.err != nil {
			m.err = msg.err
			return m, tea.Quit
		}
		if msg.gen == m.gen {
			m.frame = msg.frame
			m.status = ""
			if m.drill != 0 {
				// Only the thread view shows where threads sleep.
				m.opts.Sampler.ResolveBlocked(m.frame.Processes)
			}
		}
		return m, m.tick()
	case tea.KeyPressMsg:
		return m, m.keys(msg)
	}
	return m, nil
}

// keys handles one key message. A terminal read can carry several typed
// characters ("/cpu" typed fast, or pasted), which bubbletea v1 handed over
// as one message of several runes; each is a key of its own, so "/" still
// opens the filter and the runes after it become the filter's text.
func (m *model) keys(k tea.KeyPressMsg) tea.Cmd {
	if r := []rune(k.Text); len(r) >= 2 && k.Mod == 0 {
		var cmds []tea.Cmd
		for _, c := range r {
			cmds = append(cmds, m.key(tea.KeyPressMsg{Code: c, Text: string(c)}))
		}
		return tea.Batch(cmds...)
	}
	return m.key(k)
}

func (m *model) key(k tea.KeyPressMsg) tea.Cmd {
	if m.typing {
		switch k.Code {
		case tea.KeyEnter:
			m.typing = false
		case tea.KeyEscape:
			m.typing, m.filter = false, ""
		case tea.KeyBackspace:
			if m.filter != "" {
				m.filter = m.filter[:len(m.filter)-1]
			}
		default:
			m.filter += k.Text
		}
		m.cursor = 0
		return nil
	}
	switch k.String() {
	case "q", "ctrl+c":
		return tea.Quit
	case "up", "k":
		if m.cursor > 0 {
			m.cursor--
		}
	case "down", "j":
		m.cursor++
	case "c", "P":
		m.sort = top.SortCPU
	case "m", "M":
		m.sort = top.SortMem
	case "p", "N":
		m.sort = top.SortPID
	case "t", "T":
		m.sort = top.SortThreads
	case "n":
		m.sort = top.SortName
	case "/":
		m.typing = true
	case "enter":
		if m.drill == 0 {
			if p := m.selected(); p != nil {
				m.drill, m.drillName = p.PID, p.Name
				return m.rescan()
			}
		}
	case "esc", "backspace", "left":
		if m.drill != 0 {
			m.drill = 0
			return m.rescan()
		}
		m.filter = ""
	}
	return nil
}

// rescan starts measuring a different set of processes: it primes the
// sampler with the new scope so the first frame covers one whole interval.
func (m *model) rescan() tea.Cmd {
	m.gen++
	m.cursor = 0
	m.status = "measuring…"
	if err := m.opts.Sampler.Prime(m.spec()); err != nil {
		m.err = err
		return tea.Quit
	}
	return m.tick()
}

// rows is the frame as shown: the command line's filter, the typed filter,
// the sort.
func (m *model) rows() []top.Process {
	if m.frame == nil {
		return nil
	}
	var out []top.Process
	for _, p := range m.frame.Processes {
		if m.drill == 0 && (!m.opts.Keep(&p) || !p.Matches(m.filter)) {
			continue
		}
		out = append(out, p)
	}
	f := top.Frame{Processes: out}
	f.Sort(m.sort)
	return f.Processes
}

func (m *model) selected() *top.Process {
	rows := m.rows()
	if len(rows) == 0 {
		return nil
	}
	if m.cursor >= len(rows) {
		m.cursor = len(rows) - 1
	}
	return &rows[m.cursor]
}

// View draws the frame on the alternate screen, which the terminal puts
// back as it was when the view ends.
func (m *model) View() tea.View {
	v := tea.NewView(m.render())
	v.AltScreen = true
	return v
}

// render draws the view as text. Everything a process chose (names,
// command lines, container labels, and the filter typed or pasted) goes
// through package escape before it is measured and clipped: bubbletea
// writes the lines to the terminal as they are.
func (m *model) render() string {
	var b strings.Builder
	width := m.width
	if width <= 0 {
		width = 120
	}
	rows := m.rows()
	header := fmt.Sprintf("cpuwhy top  sort:%s", m.sort)
	if m.frame != nil {
		header += fmt.Sprintf("  %d processes  %.1f%% CPU", len(rows), sumCPU(rows))
	}
	if m.drill != 0 {
		header += escape.Sprintf("  threads of %d (%s)", m.drill, m.drillName)
	}
	if m.filter != "" || m.typing {
		header += "  filter:" + escape.String(m.filter)
		if m.typing {
			header += "_"
		}
	}
	if m.status != "" {
		header += "  " + m.status
	}
	b.WriteString(clip(header, width) + "\n")
	if m.drill != 0 {
		m.threadTable(&b, rows, width)
	} else {
		m.processTable(&b, rows, width)
	}
	b.WriteString(clip("q quit  c/m/p/t/n sort  / filter  enter threads  esc back", width))
	return b.String()
}

func (m *model) visible() int {
	h := m.height - 3 // header, column titles, key help
	if h < 1 {
		h = 20
	}
	return h
}

func (m *model) processTable(b *strings.Builder, rows []top.Process, width int) {
	b.WriteString("  " + clip(fmt.Sprintf("%8s %6s %6s %5s %5s %1s %5s %6s %-24s %s", "PID", "NSPID", "%CPU", "USR", "SYS", "S", "THR", "RSS", "CONTAINER", "COMMAND"), width) + "\n")
	start := 0
	if m.cursor >= m.visible() {
		start = m.cursor - m.visible() + 1
	}
	for i := start; i < len(rows) && i < start+m.visible(); i++ {
		p := &rows[i]
		line := escape.Sprintf("%8d %6d %6.1f %5.1f %5.1f %1s %5d %6s %-24s %s",
			p.PID, p.NsPID, p.CPU, p.User, p.System, p.State, p.NumThreads,
			top.HumanBytes(p.RSSBytes), clip(escape.String(top.ContainerLabel(p)), 24), top.Command(p))
		b.WriteString(mark(i == m.cursor, clip(line, width-2)) + "\n")
	}
}

func (m *model) threadTable(b *strings.Builder, rows []top.Process, width int) {
	b.WriteString("  " + clip(fmt.Sprintf("%8s %6s %5s %5s %1s %-16s %s", "TID", "%CPU", "USR", "SYS", "S", "NAME", "BLOCKED IN"), width) + "\n")
	if len(rows) == 0 {
		if m.frame != nil {
			b.WriteString("  the process has exited; esc to go back\n")
		}
		return
	}
	threads := rows[0].Threads
	for i := 0; i < len(threads) && i < m.visible(); i++ {
		t := &threads[i]
		where := t.Syscall
		if where == "" {
			where = t.Wchan
		}
		line := escape.Sprintf("%8d %6.1f %5.1f %5.1f %1s %-16s %s", t.TID, t.CPU, t.User, t.System, t.State, t.Name, where)
		b.WriteString("  " + clip(line, width-2) + "\n")
	}
}

func mark(selected bool, s string) string {
	if selected {
		return "> " + s
	}
	return "  " + s
}

func sumCPU(rows []top.Process) float64 {
	var t float64
	for _, p := range rows {
		t += p.CPU
	}
	return t
}

func clip(s string, width int) string {
	r := []rune(s)
	if width > 0 && len(r) > width {
		return string(r[:width])
	}
	return s
}
