package diagnose

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/cpuwhy/cpuwhy/internal/escape"
	"github.com/cpuwhy/cpuwhy/internal/syscalls"
	"github.com/cpuwhy/cpuwhy/internal/verdict"
)

// WriteJSON writes the report as one JSON object.
func WriteJSON(w io.Writer, r *Report) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // stacks read "a <- b"
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("encoding report: %w", err)
	}
	_, err := w.Write(escape.JSON(b.Bytes()))
	return err
}

// TextOptions shape the text report.
type TextOptions struct {
	Threads int // threads listed; 0: 5
}

// WriteText writes the report for a person: the target, its hottest
// threads, then each verdict with its evidence and fix, in about one
// screen, plain text without color. What the target named (its name,
// threads, fds, symbols, container) is escaped: every line is written
// through package escape.
func WriteText(w io.Writer, r *Report, o TextOptions) error {
	if o.Threads <= 0 {
		o.Threads = 5
	}
	bw := bufio.NewWriter(w)
	t := r.Target
	escape.Fprintf(bw, "cpuwhy: %s (PID %d", t.Name, t.PID)
	if n := len(r.Execs); n > 0 {
		// The window saw two programs: say so before any figure of it.
		e := r.Execs[n-1]
		escape.Fprintf(bw, "; %s until it ran exec %.1f s into the window", e.From, e.At.Seconds())
	}
	escape.Fprintf(bw, ")")
	if c := t.Container; c != nil {
		id := c.ID
		if len(id) > 12 {
			id = id[:12]
		}
		name := c.Name
		if name == "" {
			name = id
		} else {
			name += " (" + id + ")"
		}
		escape.Fprintf(bw, " in %s container %s, PID %d inside", c.Runtime, name, t.NsPID)
	}
	escape.Fprintf(bw, ": %.1f%% of a core over %.1f s (%.1f user, %.1f system", t.CPU, r.Window, t.User, t.System)
	if t.Exited >= 0.1 {
		escape.Fprintf(bw, "; %.1f in threads that exited", t.Exited)
	}
	if t.Children >= 0.5 {
		escape.Fprintf(bw, ", children %.1f", t.Children)
	}
	escape.Fprintf(bw, ")\n")
	if t.Picked != nil {
		escape.Fprintf(bw, "%s\n", t.Picked.Reason())
	}
	if r.Host != nil {
		escape.Fprintf(bw, "%s\n", hostLine(r.Host, t.CPU))
	}

	escape.Fprintf(bw, "\n%-16s %8s %7s %6s %6s %11s  %s\n", "THREAD", "TID", "CPU%", "USER", "SYS", "SYSCALLS/S", "TOP SYSCALL")
	shown, rows := 0, 0
	for _, th := range groupRows(r.Threads) {
		if rows == o.Threads || rows > 0 && th.CPU < 1 && th.SyscallRate < 100 {
			break
		}
		rows++
		shown += max(1, th.members)
		tid := fmt.Sprint(th.TID)
		name := th.Name
		switch {
		case th.Exited > 0:
			tid = fmt.Sprintf("%d×", th.Exited) // how many threads the row is
		case th.members > 1:
			// A thread group judged as one: its busiest TID, how many.
			name = fmt.Sprintf("%s ×%d", th.Group, th.members)
		}
		escape.Fprintf(bw, "%-16s %8s %7.1f %6.1f %6.1f %11s  %s\n", name, tid, th.CPU, th.User, th.System, rate(th.SyscallRate), topSyscall(th.Syscalls))
	}
	seen := max(r.ThreadCount, len(r.Threads))
	switch n := seen - shown; {
	case n > 0 && seen > len(r.Threads):
		escape.Fprintf(bw, "(%d more threads, each below 1%% CPU or not shown; --json lists the %d with the most CPU of all %d)\n", n, len(r.Threads), seen)
	case n > 0:
		escape.Fprintf(bw, "(%d more threads, each below 1%% CPU or not shown; --json lists them)\n", n)
	}

	for i, v := range r.Verdicts {
		escape.Fprintf(bw, "\n")
		escape.Fprintf(bw, "VERDICT %d: %s — %s\n", i+1, v.Pattern, subject(&v, t))
		escape.Fprintf(bw, "  %s\n", v.Summary)
		var where []string
		if v.Syscall != nil {
			where = append(where, "syscall "+*v.Syscall)
		}
		if v.Errno != nil {
			where = append(where, "errno "+*v.Errno)
		}
		switch {
		case v.FD != nil && v.FDCount > 1:
			where = append(where, fmt.Sprintf("on %d fds (%s)", v.FDCount, *v.FD))
		case v.FD != nil:
			where = append(where, "fd "+*v.FD)
		}
		if len(where) > 0 {
			escape.Fprintf(bw, "  %s\n", strings.Join(where, ", "))
		}
		if len(v.Stack) > 0 && v.Pattern != verdict.Healthy && !v.Pattern.Outside() {
			stack := v.Stack
			if len(stack) > 8 {
				stack = append(slices.Clip(stack[:8]), "...")
			}
			escape.Fprintf(bw, "  stack: %s\n", strings.Join(stack, " <- "))
		}
		for _, e := range v.Evidence {
			escape.Fprintf(bw, "  - %s\n", e)
		}
		if v.Code != nil {
			writeCode(bw, v.Code)
		}
		escape.Fprintf(bw, "  fix: %s\n", v.Advice)
	}

	escape.Fprintf(bw, "\n")
	c := r.Cpuwhy
	how := "no syscall profile"
	if c.Mechanism != "" {
		how = string(c.Mechanism) + " syscall counts"
		if c.Counting != nil && c.Counting.Sampled {
			how = fmt.Sprintf("%s syscall counts in %.0f%% of the window", c.Mechanism, 100*c.Counting.Share())
		}
	}
	escape.Fprintf(bw, "cpuwhy used %.2f s of CPU in %.1f s to this verdict (%.1f%% of a core; %s, %d stack samples)\n", c.CPU, c.Elapsed, c.CPUShare, how, c.Samples)
	for _, n := range r.Notes {
		escape.Fprintf(bw, "note: %s\n", n)
	}
	if len(r.Missing) > 0 {
		mods := make([]string, 0, len(r.Missing))
		for _, m := range r.Missing {
			mod, _, _ := strings.Cut(m, " ")
			mods = append(mods, mod)
		}
		escape.Fprintf(bw, "note: no symbols for %s: frames there print as module+offset (`cpuwhy record` says how to get them)\n", strings.Join(mods, ", "))
	}
	return bw.Flush()
}

// subject names what the verdict is about beside its CPU, which is the
// CPU of that (Verdict.CPUOf): a thread's name never stands beside the
// process's CPU.
func subject(v *verdict.Verdict, t Target) string {
	thread := fmt.Sprintf("%s (TID %d)", v.Thread.Name, v.Thread.TID)
	switch v.CPUOf {
	case verdict.CPUOfProcess:
		if v.Pattern == verdict.KernelThread {
			return fmt.Sprintf("kernel thread %s (PID %d), %.1f%% of a core", t.Name, t.PID, v.CPU)
		}
		with := ""
		if t.Children >= 0.05 {
			with = " with the children it waited for"
		}
		return fmt.Sprintf("process %s (PID %d), %.1f%% of a core%s", t.Name, t.PID, v.CPU, with)
	case verdict.CPUOfThreads:
		return fmt.Sprintf("%s and the threads it contends with, %.1f%% of a core together", thread, v.CPU)
	case verdict.CPUOfGroup:
		return fmt.Sprintf("%s ×%d (busiest %s), %.1f%% of a core together", v.Group, len(v.Threads), thread, v.CPU)
	case verdict.CPUOfCollector:
		return fmt.Sprintf("the garbage collector of %s, %.1f%% of a core (busiest: %s)", t.Name, v.CPU, thread)
	case verdict.CPUOfCompiler:
		return fmt.Sprintf("the JIT compilers of %s, %.1f%% of a core (busiest: %s)", t.Name, v.CPU, thread)
	}
	if v.Thread.TID == 0 {
		thread = t.Name
	}
	return fmt.Sprintf("%s, %.1f%% of a core", thread, v.CPU)
}

// maxCodeLines bounds the instructions shown; the hottest are kept.
const maxCodeLines = 12

func writeCode(w io.Writer, c *verdict.Code) {
	ins := c.Instructions
	if len(ins) > maxCodeLines {
		// The window of maxCodeLines with the most samples.
		best, bestN := 0, -1
		for i := 0; i+maxCodeLines <= len(ins); i++ {
			n := 0
			for _, in := range ins[i : i+maxCodeLines] {
				n += in.Samples
			}
			if n > bestN {
				best, bestN = i, n
			}
		}
		ins = ins[best : best+maxCodeLines]
	}
	loop := ""
	if c.Loop != nil {
		loop = ", the loop around the hottest marked |"
	}
	escape.Fprintf(w, "  hottest instructions of %s (%d samples%s):\n", c.Function, c.Samples, loop)
	for _, in := range ins {
		share := ""
		if in.Samples > 0 && c.Samples > 0 {
			share = fmt.Sprintf("%5.1f%%", 100*float64(in.Samples)/float64(c.Samples))
		}
		mark := " "
		if c.Loop != nil && in.Addr >= c.Loop.Start && in.Addr < c.Loop.End {
			mark = "|"
		}
		escape.Fprintf(w, "    %6s %s %#x  %s\n", share, mark, in.Addr, in.Text)
	}
}

// topSyscall describes the thread's most frequent syscall (ThreadReport
// lists them most frequent first).
func topSyscall(ss []syscalls.Syscall) string {
	if len(ss) == 0 {
		return "-"
	}
	s := ss[0]
	out := s.Name
	if s.Count == 0 {
		return out
	}
	var errs []string
	for e, n := range s.Errors {
		if 100*n >= s.Count {
			errs = append(errs, fmt.Sprintf("%s %.0f%%", e, 100*float64(n)/float64(s.Count)))
		}
	}
	slices.Sort(errs)
	if len(errs) > 0 {
		out += " " + strings.Join(errs, " ")
	}
	if 100*s.Zero >= s.Count {
		out += fmt.Sprintf(" returned 0 %.0f%%", 100*float64(s.Zero)/float64(s.Count))
	}
	return out
}

// rate is a rate per second without the unit, for a column titled /S.
func rate(r float64) string { return strings.TrimSuffix(verdict.Rate(r), "/s") }

// hostLine says in one line how busy the host was over the window, by
// mode, and how much of it was not the target (targetCPU, in percent of
// one core): whether the target was alone.
func hostLine(h *verdict.Host, targetCPU float64) string {
	a := h.All
	busy := a.Busy() / 100 * float64(h.CPUs) // in cores
	s := fmt.Sprintf("host: %d CPUs, %.2f cores busy (%.0f%%: user %.0f, system %.0f", h.CPUs, busy, a.Busy(), a.User, a.System)
	if a.IRQ >= 0.5 {
		s += fmt.Sprintf(", irq %.0f", a.IRQ)
	}
	s += fmt.Sprintf(", softirq %.0f, steal %.0f; iowait %.0f), %.2f of them not the target's; %d tasks runnable at the end, load %.2f",
		a.SoftIRQ, a.Steal, a.IOWait, max(0, busy-targetCPU/100), h.Runnable, h.Load1)
	return s
}

// groupRow is a row of the thread table: a thread, or a group of them.
type groupRow struct {
	ThreadReport
	members int // threads in the row when a group; 0 otherwise
}

// groupRows folds the threads of each group into one row at the place of
// its busiest (the first listed), summing their CPU and calls; the row
// keeps the busiest's TID and most frequent calls.
func groupRows(threads []ThreadReport) []groupRow {
	var rows []groupRow
	at := map[string]int{}
	for _, th := range threads {
		if th.Group == "" {
			rows = append(rows, groupRow{ThreadReport: th})
			continue
		}
		i, ok := at[th.Group]
		if !ok {
			at[th.Group] = len(rows)
			rows = append(rows, groupRow{ThreadReport: th, members: 1})
			continue
		}
		g := &rows[i]
		g.members++
		g.CPU = round1(g.CPU + th.CPU)
		g.User = round1(g.User + th.User)
		g.System = round1(g.System + th.System)
		g.SyscallRate += th.SyscallRate
	}
	// A group's row may now hold more CPU than rows above it.
	slices.SortStableFunc(rows, func(a, b groupRow) int { return cmp.Compare(b.CPU, a.CPU) })
	return rows
}
