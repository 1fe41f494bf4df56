package verdict

import (
	"strings"
	"testing"
)

func TestJITCompilation(t *testing.T) {
	// compiling is a JVM whose C2 and C1 threads use jit of a core
	// between them (two thirds, one third), beside a main thread using
	// the rest of 100% in its own work: its compute_loop verdict comes
	// first when it has more CPU, so the compilers' is looked for among
	// all.
	compiling := func(jit float64) *Observation {
		o := obs(thread(1, "java", cpu(100-jit, 0)), thread(2, "C2 CompilerThre", cpu(jit*2/3, 0)),
			thread(3, "C1 CompilerThre", cpu(jit/3, 0)), thread(4, "VM Thread", cpu(0, 0)))
		o.Runtime = "jvm"
		return o
	}
	// small is a JVM at a tenth of a core but for its compilers: they
	// take most of its CPU, which is hot or not.
	small := func(jit float64) *Observation {
		o := obs(thread(1, "java", cpu(0.1, 0)), thread(2, "C2 CompilerThre", cpu(jit, 0)))
		o.Runtime = "jvm"
		return o
	}
	notJVM := compiling(90)
	notJVM.Runtime = ""
	for _, tt := range []struct {
		name string
		o    *Observation
		want bool
	}{
		{"compilers just below JITShare of the CPU", compiling(0.99 * JITShare * 100), false},
		{"compilers just above JITShare of the CPU", compiling(1.01 * JITShare * 100), true},
		{"compilers' CPU just below HotThreadCPU", small(0.99 * HotThreadCPU), false},
		{"compilers' CPU just above HotThreadCPU", small(1.01 * HotThreadCPU), true},
		// Threads named so in another program are not a JVM's.
		{"not a JVM", notJVM, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var got *Verdict
			vs := Judge(tt.o)
			for i := range vs {
				if vs[i].Pattern == JITCompilation {
					got = &vs[i]
				}
			}
			if (got != nil) != tt.want {
				t.Fatalf("jit_compilation verdict: %v, want %v (verdicts %+v)", got != nil, tt.want, vs)
			}
			if got == nil {
				return
			}
			if got.Thread.TID != 2 || got.CPUOf != CPUOfCompiler {
				t.Errorf("verdict on %+v, cpu of %s; want the C2 thread (TID 2), cpu of compiler", got.Thread, got.CPUOf)
			}
			for _, v := range vs {
				if v.Pattern != JITCompilation && (v.Thread.TID == 2 || v.Thread.TID == 3) {
					t.Errorf("a compiler thread is judged again: %s", v.Pattern)
				}
			}
			if !strings.Contains(got.Summary, "JIT compilers take") {
				t.Errorf("summary %q", got.Summary)
			}
		})
	}
}

func TestJVMCompilerThread(t *testing.T) {
	for name, want := range map[string]bool{
		"C2 CompilerThre": true, "C1 CompilerThre": true, "JVMCI CompilerT": true,
		"GC Thread#0": false, "java": false, "C2": false,
	} {
		if got := jvmCompilerThread(name); got != want {
			t.Errorf("jvmCompilerThread(%q) = %v, want %v", name, got, want)
		}
	}
}
