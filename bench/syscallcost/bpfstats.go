package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/cpuwhy/cpuwhy/internal/sys"
)

// progCost is what the kernel's BPF statistics (BPF_ENABLE_STATS) say of
// the sys_exit (or floor_exit) and sys_enter programs of one tracer: their
// runs and run time over a window of their own. It is the programs' own
// cost per call, in nanoseconds, which the machine's load does not
// change as it changes the target's rate; it leaves out what the hook
// costs around a program (the floor's rate has that).
type progCost struct {
	exitRuns, enterRuns uint64
	exitNs, enterNs     time.Duration
}

// perCall is the programs' run time per call of sys_exit.
func (c progCost) perCall() float64 {
	if c.exitRuns == 0 {
		return 0
	}
	return float64((c.exitNs + c.enterNs).Nanoseconds()) / float64(c.exitRuns)
}

// measureProgCost enables the kernel's run-time statistics for window and
// sums the programs named sys_exit, floor_exit and sys_enter loaded after
// since (since boot: the tracer's start). Statistics cost every BPF
// program of the host a clock read or two per run while enabled, so this
// window is apart from the one the target's rate is taken over.
func measureProgCost(ctx context.Context, since time.Duration, window time.Duration) (progCost, error) {
	stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		return progCost{}, fmt.Errorf("enabling BPF statistics: %w", err)
	}
	defer stats.Close()
	before, err := progStats(since)
	if err != nil {
		return progCost{}, err
	}
	select {
	case <-time.After(window):
	case <-ctx.Done():
		return progCost{}, ctx.Err()
	}
	after, err := progStats(since)
	if err != nil {
		return progCost{}, err
	}
	var c progCost
	for id, a := range after {
		b := before[id]
		switch a.name {
		case "sys_exit", "floor_exit":
			c.exitRuns += a.runs - b.runs
			c.exitNs += a.runtime - b.runtime
		case "sys_enter":
			c.enterRuns += a.runs - b.runs
			c.enterNs += a.runtime - b.runtime
		}
	}
	return c, nil
}

type progStat struct {
	name    string
	runs    uint64
	runtime time.Duration
}

// progStats reads the statistics of the programs of interest loaded since.
func progStats(since time.Duration) (map[ebpf.ProgramID]progStat, error) {
	out := map[ebpf.ProgramID]progStat{}
	var id ebpf.ProgramID
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, os.ErrNotExist) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("listing BPF programs: %w", err)
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue // unloaded meanwhile
		}
		info, err := p.Info()
		if err == nil {
			loaded, ok := info.LoadTime()
			if name := info.Name; ok && loaded >= since && (name == "sys_exit" || name == "floor_exit" || name == "sys_enter") {
				if st, err := p.Stats(); err == nil {
					out[id] = progStat{name: name, runs: st.RunCount, runtime: st.Runtime}
				}
			}
		}
		p.Close()
	}
}

// sinceBoot is now on the clock of ProgramInfo.LoadTime.
func sinceBoot() time.Duration { return sys.SinceBoot() }
