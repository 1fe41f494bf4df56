package main

import (
	"context"
	"debug/elf"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/proc"
)

// Goal of issue 4: naming frames of a 100 MB binary with DWARF the first
// time takes at most 2 s and 200 MB.
const (
	goalWall = 2 * time.Second
	goalRSS  = 200 << 10 // KiB
)

// result is what the rounds measured of one symbolizer on one target.
type result struct {
	cold, coldCPU []time.Duration // first n addresses, whole process
	rss           []int64         // peak, KiB
	warm          []time.Duration // CPU per further address
	inCold        []time.Duration // cpuwhy: CPU of the first n inside the process
	again         []time.Duration // cpuwhy: CPU per address named before
	frames        []frame         // of the first n, from the first round
}

func bench(ctx context.Context, o options, stdout io.Writer) error {
	var tools []string
	if !o.noCompare {
		for _, t := range o.tools {
			if _, err := exec.LookPath(t); err == nil {
				tools = append(tools, t)
			} else {
				fmt.Fprintf(o.progress, "%s is not installed: not compared\n", t)
			}
		}
	}
	bin, err := bigBinary(o.shape, o.progress)
	if err != nil {
		return err
	}
	big, err := start(ctx, readyLine, bin)
	if err != nil {
		return err
	}
	defer big.stop()
	rng := rand.New(rand.NewPCG(o.seed, 7))
	var targets []*target

	st, _ := os.Stat(bin)
	bt := &target{name: "generated", module: bin, symbols: bin, pid: big.pid(),
		about: fmt.Sprintf("`bigsym`, generated C (%d units, gcc -g -O2), %s, %s", o.shape.Units, mib(st.Size()), sections(bin))}
	targets = append(targets, bt)

	if libc, dbg := libcOf(big.pid()); dbg != "" {
		targets = append(targets, &target{name: "libc", module: libc, symbols: dbg, pid: big.pid(),
			about: fmt.Sprintf("`%s` with its separate debug file `%s` (%s)", libc, dbg, sections(dbg))})
	} else {
		fmt.Fprintln(o.progress, "no debug file for libc under /usr/lib/debug: libc not measured")
	}
	for _, path := range o.real {
		if err := hasDWARF(path); err != nil {
			fmt.Fprintf(o.progress, "%s: %v: not measured\n", path, err)
			continue
		}
		p, err := startStopped(path)
		if err != nil {
			return err
		}
		defer p.stop()
		st, _ := os.Stat(path)
		targets = append(targets, &target{name: filepath.Base(path), module: path, symbols: path, pid: p.pid(),
			about: fmt.Sprintf("`%s`, %s, %s, stopped at its first instruction", path, mib(st.Size()), sections(path))})
	}
	for _, t := range targets {
		if err := drawAddresses(t, 10*o.n, rng); err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
	}

	results := map[string]map[string]*result{}
	for _, t := range targets {
		results[t.name] = map[string]*result{}
		for _, s := range append([]string{"cpuwhy"}, tools...) {
			results[t.name][s] = &result{}
		}
	}
	for round := range o.rounds {
		for _, t := range targets {
			if err := ctx.Err(); err != nil {
				return err
			}
			fmt.Fprintf(o.progress, "round %d/%d: %s\n", round+1, o.rounds, t.name)
			r := results[t.name]["cpuwhy"]
			cost, res, err := cpuwhyRun(t, o.n, false)
			if err != nil {
				return err
			}
			r.cold, r.coldCPU, r.rss = append(r.cold, cost.Wall), append(r.coldCPU, cost.CPU), append(r.rss, cost.RSS)
			r.inCold = append(r.inCold, res.Cold.CPU)
			if r.frames == nil {
				r.frames = res.Frames
			}
			_, res, err = cpuwhyRun(t, o.n, true)
			if err != nil {
				return err
			}
			r.warm = append(r.warm, res.Fresh.CPU/time.Duration(max(res.Fresh.N, 1)))
			r.again = append(r.again, res.Again.CPU/time.Duration(max(res.Again.N, 1)))
			for _, tool := range tools {
				r := results[t.name][tool]
				cost, frames, err := toolRun(tool, t, o.n)
				if err != nil {
					return err
				}
				more, _, err := toolRun(tool, t, len(t.addrs))
				if err != nil {
					return err
				}
				r.cold, r.coldCPU, r.rss = append(r.cold, cost.Wall), append(r.coldCPU, cost.CPU), append(r.rss, cost.RSS)
				r.warm = append(r.warm, (more.CPU-cost.CPU)/time.Duration(len(t.addrs)-o.n))
				if r.frames == nil {
					r.frames = frames
				}
			}
		}
	}

	fmt.Fprintf(stdout, "\n## Naming %d addresses the first time (%s, %d rounds, medians)\n", o.n, time.Now().Format("2006-01-02"), o.rounds)
	for _, t := range targets {
		fmt.Fprintf(stdout, "\n### %s\n\n%s\n\n", t.name, t.about)
		fmt.Fprintf(stdout, "| symbolizer | first %d: wall | CPU | peak RSS | each further address (CPU) | same file:line as addr2line | as eu-addr2line | same function as addr2line |\n", o.n)
		fmt.Fprintln(stdout, "|---|---:|---:|---:|---:|---:|---:|---:|")
		ref, eu := results[t.name]["addr2line"], results[t.name]["eu-addr2line"]
		for _, s := range append([]string{"cpuwhy"}, tools...) {
			r := results[t.name][s]
			pos, posEU, fn := "-", "-", "-"
			if ref != nil && ref.frames != nil {
				p, f, with := agreement(r.frames, ref.frames)
				pos, fn = fmt.Sprintf("%.1f%% (of %.0f%% with one)", 100*p, 100*with), fmt.Sprintf("%.1f%%", 100*f)
			}
			if eu != nil && eu.frames != nil {
				p, _, _ := agreement(r.frames, eu.frames)
				posEU = fmt.Sprintf("%.1f%%", 100*p)
			}
			fmt.Fprintf(stdout, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", s, ms(medianD(r.cold)), ms(medianD(r.coldCPU)),
				mib(1024*medianI(r.rss)), further(medianD(r.warm)), pos, posEU, fn)
		}
		c := results[t.name]["cpuwhy"]
		if ref != nil && o.differences > 0 {
			shown := 0
			for i := range c.frames {
				a, b := c.frames[i], ref.frames[i]
				if funcName(a.Func) == funcName(b.Func) && (b.Line == 0 || a.Line == b.Line && filepath.Base(a.File) == filepath.Base(b.File)) {
					continue
				}
				if shown++; shown > o.differences {
					break
				}
				fmt.Fprintf(stdout, "- %#x: cpuwhy `%s` %s:%d; addr2line `%s` %s:%d\n", t.addrs[i].vaddr, a.Func, filepath.Base(a.File), a.Line, b.Func, filepath.Base(b.File), b.Line)
			}
		}
		fmt.Fprintf(stdout, "\ncpuwhy inside its process: %s CPU for the first %d addresses, %s per address named again.\n",
			ms(medianD(c.inCold)), o.n, us(medianD(c.again)))
		for _, tool := range tools {
			r := results[t.name][tool]
			fmt.Fprintf(stdout, "cpuwhy/%s: wall %.2f, CPU %.2f, peak RSS %.2f", tool,
				ratio(medianD(c.cold), medianD(r.cold)), ratio(medianD(c.coldCPU), medianD(r.coldCPU)),
				float64(medianI(c.rss))/float64(max(medianI(r.rss), 1)))
			if w := medianD(r.warm); w > 0 {
				fmt.Fprintf(stdout, ", further address %.2f", ratio(medianD(c.warm), w))
			}
			fmt.Fprintln(stdout)
		}
		if t.name == "generated" {
			met := medianD(c.cold) <= goalWall && medianI(c.rss) <= goalRSS
			fmt.Fprintf(stdout, "Goal (issue 4: first time <= %v and <= %s on a 100 MB binary with DWARF): %s.\n", goalWall, mib(goalRSS*1024), yesNo(met))
		}
	}
	return nil
}

// libcOf returns the path of the libc pid maps and of its debug file by
// build-id on this host, "" when there is none.
func libcOf(pid int) (libc, debug string) {
	maps, err := proc.FS{}.Maps(pid)
	if err != nil {
		return "", ""
	}
	for _, m := range maps {
		if strings.HasPrefix(filepath.Base(m.Path), "libc.so") {
			libc = m.Path
		}
	}
	id := buildID(libc)
	if len(id) < 3 {
		return libc, ""
	}
	p := "/usr/lib/debug/.build-id/" + id[:2] + "/" + id[2:] + ".debug"
	if _, err := os.Stat(p); err != nil {
		return libc, ""
	}
	return libc, p
}

func hasDWARF(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if f.Section(".debug_info") == nil && f.Section(".zdebug_info") == nil {
		return fmt.Errorf("no DWARF")
	}
	if f.Section(".symtab") == nil {
		return fmt.Errorf("no .symtab to draw functions from")
	}
	return nil
}

// startStopped starts path stopped at its first instruction (a traced
// exec stops with SIGTRAP): its own code is mapped, which is what naming
// its addresses needs, and it does nothing meanwhile.
func startStopped(path string) (*process, error) {
	cmd := exec.Command(path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Ptrace: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s stopped: %w", path, err)
	}
	return &process{cmd}, nil
}

// sections describes the sizes of what names code in the object at path.
func sections(path string) string {
	f, err := elf.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var parts []string
	for _, name := range []string{".text", ".symtab", ".debug_info", ".debug_line"} {
		if s := f.Section(name); s != nil {
			size := int64(s.FileSize)
			what := name + " " + mib(size)
			if s.Flags&elf.SHF_COMPRESSED != 0 {
				what = fmt.Sprintf("%s %s (compressed, %s inflated)", name, mib(size), mib(int64(s.Size)))
			}
			parts = append(parts, what)
		}
	}
	return strings.Join(parts, ", ")
}

func mib(b int64) string {
	if b < 1<<20 {
		return fmt.Sprintf("%.0f KiB", float64(b)/1024)
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", d.Seconds()*1000) }
func us(d time.Duration) string { return fmt.Sprintf("%.2f µs", d.Seconds()*1e6) }

// further formats the cost of each further address; a tool's is a
// difference of two runs, which noise can make negative.
func further(d time.Duration) string {
	if d < 0 {
		return "≈ 0 (noise)"
	}
	return us(d)
}

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func yesNo(ok bool) string {
	if ok {
		return "met"
	}
	return "**not met**"
}

func medianD(v []time.Duration) time.Duration {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func medianI(v []int64) int64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
