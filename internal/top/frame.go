package top

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/container"
)

// Frame is one refresh of the view. Its JSON form is read by other tooling:
// fields may be added, never renamed.
type Frame struct {
	Time      time.Time `json:"time"`
	Interval  float64   `json:"interval_s"`
	Processes []Process `json:"processes"`
}

// Process is one process in a Frame. CPU figures are percent of one core.
type Process struct {
	PID        int             `json:"pid"`
	NsPID      int             `json:"ns_pid"`
	PPID       int             `json:"ppid"`
	Name       string          `json:"name"`
	Cmdline    string          `json:"cmdline"`
	State      string          `json:"state"`
	CPU        float64         `json:"cpu"`
	User       float64         `json:"user"`
	System     float64         `json:"system"`
	NumThreads int             `json:"num_threads"`
	RSSBytes   int64           `json:"rss_bytes"`
	Container  *container.Info `json:"container"`
	Threads    []Thread        `json:"threads,omitempty"`
}

// Thread is one thread of a Process.
type Thread struct {
	TID    int     `json:"tid"`
	Name   string  `json:"name"`
	CPU    float64 `json:"cpu"`
	User   float64 `json:"user"`
	System float64 `json:"system"`
	State  string  `json:"state"`
	// Syscall is the system call a sleeping thread is blocked in, when the
	// kernel lets cpuwhy see it (it needs ptrace access to the target).
	Syscall string `json:"syscall,omitempty"`
	// Wchan is the kernel function a thread sleeping outside a system
	// call waits in.
	Wchan string `json:"wchan,omitempty"`
}

// SortKey orders the processes of a Frame.
type SortKey string

// The sort keys, as accepted by --sort and the live view.
const (
	SortCPU     SortKey = "cpu"
	SortMem     SortKey = "mem"
	SortPID     SortKey = "pid"
	SortThreads SortKey = "threads"
	SortName    SortKey = "name"
)

// SortKeys lists the valid sort keys, for flags and completion.
var SortKeys = []SortKey{SortCPU, SortMem, SortPID, SortThreads, SortName}

// ParseSortKey validates a sort key given by a user.
func ParseSortKey(s string) (SortKey, error) {
	k := SortKey(strings.ToLower(s))
	if slices.Contains(SortKeys, k) {
		return k, nil
	}
	return "", fmt.Errorf("unknown sort key %q (use one of %s)", s, joinKeys())
}

func joinKeys() string {
	var b strings.Builder
	for i, k := range SortKeys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(string(k))
	}
	return b.String()
}

// Sort orders processes by key (largest first for quantities, ascending for
// pid and name), and each process's threads by CPU.
func (f *Frame) Sort(key SortKey) {
	slices.SortStableFunc(f.Processes, func(a, b Process) int {
		var c int
		switch key {
		case SortMem:
			c = cmp.Compare(b.RSSBytes, a.RSSBytes)
		case SortPID:
			c = cmp.Compare(a.PID, b.PID)
		case SortThreads:
			c = cmp.Compare(b.NumThreads, a.NumThreads)
		case SortName:
			c = strings.Compare(a.Name, b.Name)
		default:
			c = cmp.Compare(b.CPU, a.CPU)
		}
		if c == 0 {
			c = cmp.Compare(a.PID, b.PID)
		}
		return c
	})
	for i := range f.Processes {
		slices.SortStableFunc(f.Processes[i].Threads, func(a, b Thread) int {
			if c := cmp.Compare(b.CPU, a.CPU); c != 0 {
				return c
			}
			return cmp.Compare(a.TID, b.TID)
		})
	}
}

// Filter keeps the processes for which keep is true.
func (f *Frame) Filter(keep func(*Process) bool) {
	f.Processes = slices.DeleteFunc(f.Processes, func(p Process) bool { return !keep(&p) })
}

// Matches reports whether the process's name, command line, container name
// or id, or PID contains s (case-insensitive): the live view's filter.
func (p *Process) Matches(s string) bool {
	if s == "" {
		return true
	}
	s = strings.ToLower(s)
	fields := []string{p.Name, p.Cmdline, fmt.Sprint(p.PID)}
	if p.Container != nil {
		fields = append(fields, p.Container.Name, p.Container.ID, string(p.Container.Runtime))
	}
	for _, f := range fields {
		if strings.Contains(strings.ToLower(f), s) {
			return true
		}
	}
	return false
}

// Total is the CPU of all processes in the frame.
func (f *Frame) Total() float64 {
	var t float64
	for _, p := range f.Processes {
		t += p.CPU
	}
	return t
}
