package proc

import (
	"math"
	"testing"
	"time"
)

func snap(at time.Duration, procs ...Process) *Snapshot {
	return &Snapshot{SinceBoot: at, Processes: procs}
}

func TestCompare(t *testing.T) {
	sec := time.Second
	tests := []struct {
		name       string
		prev, cur  *Snapshot
		wantCPU    map[int]CPU
		wantThread map[int]float64
	}{
		{
			name:    "steady busy process",
			prev:    snap(100*sec, Process{Stat: Stat{PID: 10, StartTime: 5, UTime: 1000, STime: 500}}),
			cur:     snap(102*sec, Process{Stat: Stat{PID: 10, StartTime: 5, UTime: 1150, STime: 550}}),
			wantCPU: map[int]CPU{10: {Total: 100, User: 75, System: 25}},
		},
		{
			name:    "new process started inside the window is measured from its start",
			prev:    snap(100 * sec),
			cur:     snap(101*sec, Process{Stat: Stat{PID: 11, StartTime: 100*TicksPerSecond + 50, UTime: 50}}),
			wantCPU: map[int]CPU{11: {Total: 50, User: 50}},
		},
		{
			name:    "reused pid counts as new",
			prev:    snap(100*sec, Process{Stat: Stat{PID: 12, StartTime: 1, UTime: 9999}}),
			cur:     snap(101*sec, Process{Stat: Stat{PID: 12, StartTime: 100*TicksPerSecond + 10, UTime: 20}}),
			wantCPU: map[int]CPU{12: {Total: 20, User: 20}},
		},
		{
			name:    "missed old process gets its lifetime average",
			prev:    snap(100 * sec),
			cur:     snap(101*sec, Process{Stat: Stat{PID: 13, StartTime: 1 * TicksPerSecond, UTime: 2500}}),
			wantCPU: map[int]CPU{13: {Total: 25, User: 25}},
		},
		{
			name:    "clock step back never gives negative CPU",
			prev:    snap(100*sec, Process{Stat: Stat{PID: 14, StartTime: 1, UTime: 500}}),
			cur:     snap(101*sec, Process{Stat: Stat{PID: 14, StartTime: 1, UTime: 499}}),
			wantCPU: map[int]CPU{14: {}},
		},
		{
			name: "threads matched by tid and start time",
			prev: snap(100*sec, Process{Stat: Stat{PID: 20, StartTime: 1, UTime: 100}, Threads: []Stat{
				{PID: 20, StartTime: 1, UTime: 10},
				{PID: 21, StartTime: 2, UTime: 90},
			}}),
			cur: snap(101*sec, Process{Stat: Stat{PID: 20, StartTime: 1, UTime: 200}, Threads: []Stat{
				{PID: 20, StartTime: 1, UTime: 11},
				{PID: 21, StartTime: 2, UTime: 189},
				{PID: 22, StartTime: 100*TicksPerSecond + 1, UTime: 0},
			}}),
			wantCPU:    map[int]CPU{20: {Total: 100, User: 100}},
			wantThread: map[int]float64{20: 1, 21: 99, 22: 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Compare(tt.prev, tt.cur)
			if len(got) != len(tt.cur.Processes) {
				t.Fatalf("got %d processes, want %d", len(got), len(tt.cur.Processes))
			}
			for _, p := range got {
				want := tt.wantCPU[p.PID]
				if !near(p.CPU.Total, want.Total) || !near(p.CPU.User, want.User) || !near(p.CPU.System, want.System) {
					t.Errorf("pid %d CPU = %+v, want %+v", p.PID, p.CPU, want)
				}
				for _, th := range p.Threads {
					if w, ok := tt.wantThread[th.PID]; !ok || !near(th.CPU.Total, w) {
						t.Errorf("tid %d CPU = %v, want %v", th.PID, th.CPU.Total, w)
					}
				}
			}
		})
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
