package verdict

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/cpuwhy/cpuwhy/internal/syscalls"
)

// Thread groups: the threads of a pool (shard-0..3, worker-N,
// pool-1-thread-N, or all named like the process, as SoftEther's are)
// doing the same work are judged as one, so that four workers at a
// quarter of a core each are one verdict at a whole core, not four. Two
// threads are of one group when their names are the same once digits are
// set aside, and they do the same work: the hottest stack of one is among
// the most sampled stacks of the other (both ways). Threads not sampled
// are never grouped: their name alone does not say they do the same work.

// groupStacks is how many of a thread's most sampled stacks the hottest
// stack of another must be among: a pool's threads share their hot path,
// but which of two nearly equal stacks comes first in a short window is
// chance.
const groupStacks = 3

// Group is threads of one process judged as one.
type Group struct {
	Pattern string // their name with each run of digits as #: "shard-#"
	TIDs    []int  // busiest first
}

// nameKey is a thread name with each run of digits replaced by #.
func nameKey(name string) string {
	var b strings.Builder
	digits := false
	for _, r := range name {
		if r >= '0' && r <= '9' {
			if !digits {
				b.WriteByte('#')
			}
			digits = true
			continue
		}
		digits = false
		b.WriteRune(r)
	}
	return b.String()
}

// sameWork reports whether the hottest stack of a is among the top stacks
// of b, and the other way round.
func sameWork(a, b *Thread) bool {
	in := func(s Stack, t *Thread) bool {
		for i := range min(groupStacks, len(t.Stacks)) {
			if slices.Equal(t.Stacks[i].Frames, s.Frames) && slices.Equal(t.Stacks[i].Kernel, s.Kernel) {
				return true
			}
		}
		return false
	}
	if len(a.Stacks) == 0 || len(b.Stacks) == 0 || a.Samples == 0 || b.Samples == 0 {
		return false
	}
	return in(a.Stacks[0], b) && in(b.Stacks[0], a)
}

// Groups returns the groups of two or more live threads of o (those in
// skip left out), each busiest first, the busiest group first. o.Threads
// are hottest first.
func Groups(o *Observation, skip map[int]bool) []Group {
	type group struct {
		key     string
		members []*Thread
	}
	var gs []*group
	for i := range o.Threads {
		t := &o.Threads[i]
		if t.Exited > 0 || skip[t.TID] || t.Samples == 0 {
			continue
		}
		key := nameKey(t.Name)
		var home *group
		for _, g := range gs {
			if g.key == key && sameWork(g.members[0], t) {
				home = g
				break
			}
		}
		if home == nil {
			home = &group{key: key}
			gs = append(gs, home)
		}
		home.members = append(home.members, t)
	}
	var out []Group
	for _, g := range gs {
		if len(g.members) < 2 {
			continue
		}
		grp := Group{Pattern: g.key}
		for _, t := range g.members {
			grp.TIDs = append(grp.TIDs, t.TID)
		}
		out = append(out, grp)
	}
	return out
}

// merged is the threads of g as one thread: the busiest's TID, name and
// hot code, everyone's CPU, demand, calls and samples.
func merged(o *Observation, g Group) Thread {
	var members []*Thread
	for _, tid := range g.TIDs {
		for i := range o.Threads {
			if o.Threads[i].TID == tid && o.Threads[i].Exited == 0 {
				members = append(members, &o.Threads[i])
			}
		}
	}
	m := Thread{TID: members[0].TID, Name: members[0].Name, Code: members[0].Code}
	stacks := map[string]*Stack{}
	calls := map[string][]syscalls.Syscall{}
	for _, t := range members {
		m.CPU.Total += t.CPU.Total
		m.CPU.User += t.CPU.User
		m.CPU.System += t.CPU.System
		m.Demand += max(t.Demand, t.CPU.Total)
		m.Samples += t.Samples
		for _, s := range t.Stacks {
			k := strings.Join(s.Frames, "\x00") + "\x01" + strings.Join(s.Kernel, "\x00")
			if stacks[k] == nil {
				stacks[k] = &Stack{Frames: s.Frames, Kernel: s.Kernel}
			}
			stacks[k].Count += s.Count
		}
		for _, s := range t.Syscalls {
			calls[s.Name] = append(calls[s.Name], s)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(stacks)) {
		m.Stacks = append(m.Stacks, *stacks[k])
	}
	slices.SortStableFunc(m.Stacks, func(a, b Stack) int { return b.Count - a.Count })
	for _, name := range slices.Sorted(maps.Keys(calls)) {
		m.Syscalls = append(m.Syscalls, mergeSyscalls(calls[name]))
	}
	// Each call's share of the group's syscall time, by time when timed,
	// else by count, hottest first, as the summary orders a thread's.
	var total, count float64
	for _, s := range m.Syscalls {
		total += float64(s.TotalNs)
		count += float64(s.Count)
	}
	for i := range m.Syscalls {
		if total > 0 {
			m.Syscalls[i].Share = pct(float64(m.Syscalls[i].TotalNs), total)
		} else {
			m.Syscalls[i].Share = pct(float64(m.Syscalls[i].Count), count)
		}
	}
	slices.SortStableFunc(m.Syscalls, func(a, b syscalls.Syscall) int { return cmp.Compare(b.Share, a.Share) })
	return m
}

// mergeSyscalls sums the calls of one syscall made by several threads.
// Percentiles are the largest of the threads' (an upper bound).
func mergeSyscalls(ss []syscalls.Syscall) syscalls.Syscall {
	out := syscalls.Syscall{Name: ss[0].Name, Nr: ss[0].Nr, Errors: map[string]uint64{}}
	fds := map[int]*syscalls.FD{}
	ops := map[string]*syscalls.Op{}
	var timedNs uint64
	for _, s := range ss {
		out.Count += s.Count
		out.Rate += s.Rate
		out.TotalNs += s.TotalNs
		out.Timed += s.Timed
		timedNs += s.MeanNs * s.Timed
		out.P50Ns = max(out.P50Ns, s.P50Ns)
		out.P99Ns = max(out.P99Ns, s.P99Ns)
		out.OK += s.OK
		out.Zero += s.Zero
		out.Bytes += s.Bytes
		out.FDCount = max(out.FDCount, s.FDCount)
		for e, n := range s.Errors {
			out.Errors[e] += n
		}
		for i, h := range s.Hist {
			for len(out.Hist) <= i {
				out.Hist = append(out.Hist, 0)
			}
			out.Hist[i] += h
		}
		for _, fd := range s.FDs {
			if fds[fd.FD] == nil {
				c := fd
				c.Count = 0
				fds[fd.FD] = &c
			}
			fds[fd.FD].Count += fd.Count
		}
		for _, op := range s.Ops {
			if ops[op.Name] == nil {
				ops[op.Name] = &syscalls.Op{Name: op.Name, Errors: map[string]uint64{}}
			}
			o := ops[op.Name]
			o.Count += op.Count
			o.Zero += op.Zero
			for e, n := range op.Errors {
				o.Errors[e] += n
			}
		}
	}
	if out.Timed > 0 {
		out.MeanNs = timedNs / out.Timed
	}
	for _, fd := range slices.Sorted(maps.Keys(fds)) {
		out.FDs = append(out.FDs, *fds[fd])
	}
	slices.SortStableFunc(out.FDs, func(a, b syscalls.FD) int { return cmp.Compare(b.Count, a.Count) })
	if len(out.FDs) > syscalls.MaxFDs {
		out.FDs = out.FDs[:syscalls.MaxFDs]
	}
	if out.FDCount > 0 {
		out.FDCount = max(out.FDCount, len(fds))
	}
	for _, name := range slices.Sorted(maps.Keys(ops)) {
		out.Ops = append(out.Ops, *ops[name])
	}
	slices.SortStableFunc(out.Ops, func(a, b syscalls.Op) int { return cmp.Compare(b.Count, a.Count) })
	return out
}

// judgeGroup judges the threads of g as one thread with the per-thread
// rules; nil when none holds or the group is not hot.
func judgeGroup(o *Observation, g Group) *Verdict {
	m := merged(o, g)
	if m.load() < HotThreadCPU {
		return nil
	}
	var v *Verdict
	for _, r := range rules {
		if r.scope == perThread {
			if v = r.thread(o, &m); v != nil {
				break
			}
		}
	}
	if v == nil {
		return nil
	}
	var parts []string
	for _, tid := range g.TIDs {
		for i := range o.Threads {
			if t := &o.Threads[i]; t.TID == tid && t.Exited == 0 {
				v.Threads = append(v.Threads, ThreadRef{TID: t.TID, Name: t.Name})
				parts = append(parts, fmt.Sprintf("%d %.1f%%", t.TID, t.CPU.Total))
			}
		}
	}
	n := len(v.Threads)
	v.CPU, v.CPUOf, v.Group = round1(m.CPU.Total), CPUOfGroup, g.Pattern
	v.ThreadCPU = round1(o.Threads[slices.IndexFunc(o.Threads, func(t Thread) bool { return t.TID == m.TID })].CPU.Total)
	line := fmt.Sprintf("%d threads named %s with the same hot stack, judged as one: %.1f%% of a core together (TID %s)",
		n, g.Pattern, m.CPU.Total, strings.Join(parts, ", TID "))
	if m.Demand >= m.CPU.Total+10 {
		line += fmt.Sprintf("; they wanted %.1f%% and waited for a CPU %.1f%% of a core", m.Demand, m.Demand-m.CPU.Total)
	}
	own := cpuLine(&m)
	replaced := false
	for i, e := range v.Evidence {
		if e == own {
			v.Evidence[i], replaced = line, true
		}
	}
	if !replaced {
		v.Evidence = append([]string{line}, v.Evidence...)
	}
	v.Summary = strings.Replace(v.Summary, "thread "+m.Name, fmt.Sprintf("thread group %s (%d threads)", g.Pattern, n), 1)
	return v
}
