package verdict

import (
	"fmt"
	"strings"
)

// jit_compilation: a JVM's just-in-time compilers take the CPU. HotSpot
// compiles on threads of its own (C1 and C2 CompilerThreadN, JVMCI's for
// Graal), so it is judged on the process, as the JVM's gc_pressure is.
//
// Thresholds: JITShare or more of the process's CPU in its compiler
// threads, and their CPU HotThreadCPU or more (rules.go). A JVM compiles
// its hot code in its first seconds or minutes and then hardly at all;
// compilers holding most of its CPU past that are compiling the same code
// again and again (classes loaded anew by class loaders made per request,
// deoptimization loops, a full code cache flushing what it compiled) or
// everything at once (-Xcomp). The threads it explains are not judged
// again.

// JITShare is the part of the process's CPU in its compiler threads
// above which compilation is the problem, as GCShare is for the
// collector: a warm JVM spends a few percent there; most of it is what
// the JVM does instead of the program's work.
const JITShare = 0.4

// jvmCompilerThread reports whether a JVM thread name is one of its JIT
// compilers' (the kernel keeps 15 bytes: "C2 CompilerThre").
func jvmCompilerThread(name string) bool {
	for _, p := range []string{"C1 CompilerThre", "C2 CompilerThre", "JVMCI CompilerT", "JVMCI-native Co"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

func jitCompilation(o *Observation) (*Verdict, []int) {
	if o.Runtime != "jvm" {
		return nil, nil
	}
	var cpu, topCPU float64
	var top *Thread
	var covered []int
	var c1, c2 float64
	for i := range o.Threads {
		t := &o.Threads[i]
		if t.Exited != 0 || !jvmCompilerThread(t.Name) {
			continue
		}
		cpu += t.CPU.Total
		covered = append(covered, t.TID)
		if strings.HasPrefix(t.Name, "C1") {
			c1 += t.CPU.Total
		} else {
			c2 += t.CPU.Total
		}
		if top == nil || t.CPU.Total > topCPU {
			top, topCPU = t, t.CPU.Total
		}
	}
	if top == nil || o.CPU.Total <= 0 {
		return nil, nil
	}
	share := cpu / o.CPU.Total
	if share < JITShare || cpu < HotThreadCPU {
		return nil, nil
	}
	v := newVerdict(JITCompilation, top)
	v.CPU, v.CPUOf = round1(cpu), CPUOfCompiler
	v.Summary = fmt.Sprintf("the JVM's JIT compilers take %.0f%% of the process's CPU: it compiles code again and again (or all of it) instead of running it", 100*share)
	v.Evidence = []string{
		fmt.Sprintf("process %s (PID %d) used %.1f%% of a core, %.1f%% of a core of it in %d compiler threads (C1 %.1f%%, C2 and others %.1f%%)", o.Name, o.PID, o.CPU.Total, cpu, len(covered), c1, c2),
	}
	v.Evidence = append(v.Evidence, stackLine(top)...)
	v.Advice = "a JVM in its first minutes compiles its hot code: if it just started, run cpuwhy again once it is warm; if not, look for class loaders made per request or per script (each new class is compiled anew), -Xcomp or -XX:-TieredCompilation in its flags, and deoptimization loops or a full code cache (`jcmd PID Compiler.codecache`, -Xlog:jit+compilation=debug)"
	return v, covered
}
