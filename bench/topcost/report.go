package main

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"time"
)

func writeReport(w io.Writer, o options, results []levelResult) {
	fmt.Fprintf(w, "\n## cpuwhy top: CPU per refresh (%s, %d CPUs, GOMAXPROCS %d, %s)\n\n",
		time.Now().Format("2006-01-02"), runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version())
	fmt.Fprintf(w, "Load: %d processes of `threads`, the first with %d busy threads; %d refreshes per mode, %v apart; goal: p90 <= %s ms.\n\n",
		o.procs, o.busy, o.refreshes, o.interval, ms(o.goal))
	fmt.Fprintln(w, "| host threads | view | refresh | cpuwhy ms CPU median | p90 | mean | top ms | ps ms | cpuwhy/top | cpuwhy/ps | goal |")
	fmt.Fprintln(w, "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, l := range results {
		for _, m := range l.modes {
			view, refresh, _ := strings.Cut(m.name, "/")
			view, refresh = refresh, view
			topCPU, psCPU := median(l.topProcs), median(l.psProcs)
			if m.threads {
				view = "threads (-H)"
				topCPU, psCPU = median(l.topThreads), median(l.psThreads)
			}
			med, p90 := median(m.cpu), percentile(m.cpu, 90)
			goal := "yes"
			if p90 > o.goal {
				goal = "**no**"
			}
			fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
				l.hostThreads, view, refresh, ms(med), ms(p90), ms(mean(m.cpu)),
				ms(topCPU), ms(psCPU), ratio(med, topCPU), ratio(med, psCPU), goal)
		}
	}

	fmt.Fprintln(w, "\ntop ms: `top -b -n 1+k -d 0.1` minus `top -b -n 1`, over k (`-H` for the thread view); ps ms: one `ps -eLf` (thread view) or `ps -ef`, startup included.")
	if o.firstIterLoad > 0 {
		fmt.Fprintf(w, "\n-iter: threads listed by the BPF task iterator (internal/taskiter), /proc for the rest; kept loaded across refreshes as `cpuwhy top` keeps it; a cold-iter-load refresh also loads and attaches it, as the first frame of `cpuwhy top -H` does (%s ms CPU the first time in a process, when the kernel's BTF is parsed, counted in no row).\n", ms(o.firstIterLoad))
	}
	fmt.Fprintln(w, "\n### Details")
	fmt.Fprintln(w, "\n| host threads | mode | rows | on calling thread median ms | alloc/refresh median | objects/refresh median | RSS MiB |")
	fmt.Fprintln(w, "|---:|---|---:|---:|---:|---:|---:|")
	for _, l := range results {
		for _, m := range l.modes {
			fmt.Fprintf(w, "| %d | %s | %d | %s | %s | %d | %.1f |\n",
				l.hostThreads, m.name, m.rows, ms(median(m.onThread)),
				bytes(medianU(m.allocBytes)), medianU(m.allocObjects), float64(m.rssBytes)/(1<<20))
		}
	}
	for _, l := range results {
		fmt.Fprintf(w, "\n%d host threads (+%d): peak RSS %.1f MiB", l.hostThreads, l.extraThreads, float64(l.hwmBytes)/(1<<20))
		if len(l.topThreads) > 0 {
			fmt.Fprintf(w, "; top -H per refresh %s; top %s; ps -eLf %s; ps -ef %s",
				list(l.topThreads), list(l.topProcs), list(l.psThreads), list(l.psProcs))
		}
		fmt.Fprintln(w)
		for _, m := range l.modes {
			fmt.Fprintf(w, "  cpuwhy %s: %s\n", m.name, list(m.cpu))
		}
	}
}

func ms(d time.Duration) string {
	if d < 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond))
}

func ratio(a, b time.Duration) string {
	if a < 0 || b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", float64(a)/float64(b))
}

func bytes(b uint64) string {
	switch {
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d B", b)
}

func list(ds []time.Duration) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = ms(d)
	}
	return "[" + strings.Join(s, " ") + "] ms"
}

// median and percentile use the nearest rank; -1 means no samples.
func median(ds []time.Duration) time.Duration { return percentile(ds, 50) }

func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return -1
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := (p*len(s) + 99) / 100 // ceil(p/100 * n), 1-based
	return s[max(rank, 1)-1]
}

func mean(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return -1
	}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(len(ds))
}

func medianU(v []uint64) uint64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[(len(s)+1)/2-1]
}
