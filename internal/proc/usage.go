package proc

import "time"

// TicksPerSecond is USER_HZ, the unit of utime and stime. It is part of the
// kernel ABI and 100 on every architecture cpuwhy supports (x86_64, arm64),
// which is why it is a constant rather than a sysconf call.
const TicksPerSecond = 100

// CPU is a share of one core in percent (100 = one core busy), split into
// user and system time.
type CPU struct {
	Total  float64
	User   float64
	System float64
}

// ThreadUsage is one thread's CPU between two snapshots.
type ThreadUsage struct {
	Stat
	CPU CPU
}

// ProcessUsage is one process's CPU between two snapshots. Its CPU counts
// threads that exited within the window too, so it can exceed the sum of
// Threads.
type ProcessUsage struct {
	Stat
	CPU     CPU
	Threads []ThreadUsage // nil unless both snapshots read threads
}

// Compare gives the CPU use of every process in cur since prev. A process or
// thread absent from prev, or present under a reused PID (a different start
// time), is measured from its start when it began within the window; one
// that began earlier but was not in prev (a narrower scan, a failed read) is
// given its lifetime average, the best estimate left. Processes absent from
// cur are gone and not reported.
func Compare(prev, cur *Snapshot) []ProcessUsage {
	elapsed := window{prev.SinceBoot, cur.SinceBoot}
	out := make([]ProcessUsage, 0, len(cur.Processes))
	for i := range cur.Processes {
		p := &cur.Processes[i]
		u := ProcessUsage{Stat: p.Stat}
		old := prev.Find(p.PID)
		if old != nil && old.StartTime != p.StartTime {
			old = nil
		}
		if old != nil {
			u.CPU = cpuBetween(&old.Stat, &p.Stat, elapsed)
		} else {
			u.CPU = cpuBetween(nil, &p.Stat, elapsed)
		}
		if p.Threads != nil {
			u.Threads = compareThreads(old, p, elapsed)
		}
		out = append(out, u)
	}
	return out
}

// window is the span between two snapshots on the boot clock.
type window struct{ start, end time.Duration }

func ticksToDuration(t uint64) time.Duration {
	return time.Duration(t) * (time.Second / TicksPerSecond)
}

func compareThreads(old, cur *Process, elapsed window) []ThreadUsage {
	out := make([]ThreadUsage, 0, len(cur.Threads))
	j := 0
	for i := range cur.Threads {
		t := &cur.Threads[i]
		var before *Stat
		if old != nil {
			// Both thread lists are sorted by TID: walk them together.
			for j < len(old.Threads) && old.Threads[j].PID < t.PID {
				j++
			}
			if j < len(old.Threads) && old.Threads[j].PID == t.PID && old.Threads[j].StartTime == t.StartTime {
				before = &old.Threads[j]
			}
		}
		out = append(out, ThreadUsage{Stat: *t, CPU: cpuBetween(before, t, elapsed)})
	}
	return out
}

func cpuBetween(before, after *Stat, w window) CPU {
	var du, ds uint64
	elapsed := w.end - w.start
	if before == nil {
		du, ds = after.UTime, after.STime
		if started := ticksToDuration(after.StartTime); started < w.start {
			elapsed = w.end - started
		}
	} else {
		du, ds = sub(after.UTime, before.UTime), sub(after.STime, before.STime)
	}
	if elapsed <= 0 {
		return CPU{}
	}
	scale := 100 / (elapsed.Seconds() * TicksPerSecond)
	c := CPU{User: float64(du) * scale, System: float64(ds) * scale}
	c.Total = c.User + c.System
	return c
}

// sub never goes negative: per-thread times can step back by a tick when
// the kernel rescales utime/stime from the precise runtime.
func sub(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}
