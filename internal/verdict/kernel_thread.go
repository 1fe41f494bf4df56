package verdict

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// kernel_thread: the target is a kernel thread (no user space), busy. Its
// name says which part of the kernel it runs, and its kernel stacks, when
// sampled, the functions: the verdict explains what drives it rather than
// refusing it. ksoftirqd/N gets the softirqs that ran on CPU N.
//
// Thresholds: none of its own. A kernel thread is judged as every
// process is, from BusyCPU (healthy.go) up; below it, healthy.

// kernelRole is what a family of kernel threads does, and what drives it.
type kernelRole struct {
	name   *regexp.Regexp
	does   string
	advice string
}

var kernelRoles = []kernelRole{
	{regexp.MustCompile(`^ksoftirqd/(\d+)$`), "runs the softirqs that piled up on its CPU (packets received or sent, timers, block I/O completions, RCU callbacks) when the interrupt path could not keep up",
		"find what raises them: /proc/softirqs says which (NET_RX: received traffic; spread it with RSS/RPS, irq affinity, interrupt coalescing), and /proc/interrupts which device"},
	{regexp.MustCompile(`^kworker/`), "runs work that drivers and kernel subsystems queue (workqueues): its kernel stack names the work function",
		"the work function on its stack names the subsystem; a kworker spinning on the same function is often a driver bug or a storm of events (hotplug, ACPI, writeback): look at dmesg, and at the device it serves"},
	{regexp.MustCompile(`^kswapd`), "reclaims memory: the machine is short of free memory and the kernel scans pages to free them",
		"free memory for the workload: fewer or smaller processes, more RAM, or limits on the page cache hog; vm.min_free_kbytes and swap settings change when kswapd wakes"},
	{regexp.MustCompile(`^kcompactd`), "compacts memory to make contiguous free pages (huge pages, large allocations)",
		"check transparent huge pages (/sys/kernel/mm/transparent_hugepage/defrag) and what asks for large contiguous allocations"},
	{regexp.MustCompile(`^khugepaged$`), "collapses small pages into transparent huge pages",
		"set /sys/kernel/mm/transparent_hugepage/enabled to madvise to limit it to programs that ask"},
	{regexp.MustCompile(`^rcu_`), "runs RCU grace periods and callbacks: the kernel frees objects released under RCU",
		"something frees kernel objects at a high rate (short-lived sockets, files, processes, network namespaces): find who creates them"},
	{regexp.MustCompile(`^migration/`), "moves tasks between CPUs for the scheduler",
		"tasks bounce between CPUs: pin the busy ones (affinity, cpusets) or check for a CPU hotplug or frequent affinity changes"},
	{regexp.MustCompile(`^jbd2/`), "commits the journal of an ext4 file system",
		"a workload makes many small synchronous writes (fsync, O_SYNC): batch them, or mount with a longer commit interval"},
	{regexp.MustCompile(`^irq/(\d+)-(.+)$`), "runs the threaded interrupt handler of a device",
		"the device raises interrupts at a high rate: its driver's coalescing settings (ethtool -C for a NIC) and /proc/interrupts tell how many"},
}

func kernelThread(o *Observation) (*Verdict, []int) {
	if !o.Kernel {
		return nil, nil
	}
	v := processVerdict(KernelThread, o)
	v.Stack = nil
	does, advice := "runs kernel code on behalf of the whole machine", "its kernel stacks name the subsystem: look at what feeds it (dmesg, /proc/interrupts, /proc/softirqs)"
	var cpu = -1
	for _, r := range kernelRoles {
		if m := r.name.FindStringSubmatch(o.Name); m != nil {
			does, advice = r.does, r.advice
			if strings.HasPrefix(o.Name, "ksoftirqd/") {
				fmt.Sscan(m[1], &cpu)
			}
			break
		}
	}
	v.Summary = fmt.Sprintf("%s is a kernel thread, not a program: it %s", o.Name, does)
	ev := []string{fmt.Sprintf("it used %.1f%% of a core, all of it in the kernel", o.CPU.Total)}
	if fns := kernelFunctions(o); len(fns) > 0 {
		ev = append(ev, "its hottest kernel functions: "+strings.Join(fns, ", "))
		for i := range o.Threads {
			if ks := hottestKernel(&o.Threads[i]); len(ks) > 0 {
				v.Stack = ks
				break
			}
		}
	}
	if cpu >= 0 && o.Host != nil {
		var parts []string
		for _, r := range o.Host.Softirqs {
			for j, c := range r.CPUs {
				if c == cpu && j < len(r.PerCPU) && r.PerCPU[j] >= 1 {
					parts = append(parts, fmt.Sprintf("%s %s", r.Name, rate(r.PerCPU[j])))
				}
			}
		}
		if len(parts) > 0 {
			ev = append(ev, fmt.Sprintf("softirqs on CPU %d over the window: %s", cpu, strings.Join(parts, ", ")))
		}
		for _, m := range o.Host.PerCPU {
			if m.CPU == cpu {
				ev = append(ev, fmt.Sprintf("CPU %d spent %.0f%% of its time in softirqs and %.0f%% in interrupts", cpu, m.SoftIRQ, m.IRQ))
			}
		}
	}
	v.Evidence = ev
	v.Advice = advice
	var tids []int
	for i := range o.Threads {
		tids = append(tids, o.Threads[i].TID)
	}
	return v, tids
}

// hottestKernel returns the kernel frames of the thread's most sampled
// stack, innermost first.
func hottestKernel(t *Thread) []string {
	for _, s := range t.Stacks {
		if len(s.Kernel) > 0 {
			return s.Kernel
		}
	}
	return nil
}

// kernelFunctions names the three kernel functions most often at the top
// of the process's stacks, with their share of the samples.
func kernelFunctions(o *Observation) []string {
	counts := map[string]int{}
	total := 0
	for i := range o.Threads {
		for _, s := range o.Threads[i].Stacks {
			total += s.Count
			if len(s.Kernel) > 0 {
				counts[s.Kernel[0]] += s.Count
			}
		}
	}
	names := make([]string, 0, len(counts))
	for n := range counts {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int {
		if counts[a] != counts[b] {
			return counts[b] - counts[a]
		}
		return strings.Compare(a, b)
	})
	var out []string
	for i, n := range names {
		if i == 3 {
			break
		}
		out = append(out, fmt.Sprintf("%s %.0f%%", n, pct(float64(counts[n]), float64(total))))
	}
	return out
}
