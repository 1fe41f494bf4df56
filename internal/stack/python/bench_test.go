package python_test

import (
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/stack"
	"github.com/cpuwhy/cpuwhy/internal/stack/python"
	"github.com/cpuwhy/cpuwhy/internal/unwind"
)

// BenchmarkExpand is the cost of naming one sample's Python frames of a
// running compute loop (the code objects' names cached, as in a
// recording), beside the reads it makes.
func BenchmarkExpand(b *testing.B) {
	py := interpreters()[5]
	pid := startB(b, py, "compute")
	maps, err := proc.FS{}.Maps(pid)
	if err != nil {
		b.Fatal(err)
	}
	reads := 0
	mem := countingMemory{mem: unwind.ProcessMemory{Pid: pid}, reads: &reads}
	in, err := python.Runtime{}.Attach(stack.Process{PID: pid, NsPID: pid, FS: proc.FS{}, Maps: maps, Mem: mem})
	if err != nil || in == nil {
		b.Fatal(err)
	}
	native := []stack.Frame{{Kind: stack.Native, Function: "_PyEval_EvalFrameDefault"}, {Kind: stack.Native, Function: "main"}}
	frames := make([]stack.Frame, 2)
	in.Expand(pid, []uint64{1, 2}, append(frames[:0], native...))
	reads = 0
	start := time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		in.Expand(pid, []uint64{1, 2}, append(frames[:0], native...))
	}
	b.ReportMetric(float64(reads)/float64(b.N), "reads/op")
	_ = start
}

type countingMemory struct {
	mem   unwind.Memory
	reads *int
}

func (m countingMemory) ReadAt(p []byte, addr uint64) (int, error) {
	*m.reads++
	return m.mem.ReadAt(p, addr)
}
