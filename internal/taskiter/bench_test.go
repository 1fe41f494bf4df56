package taskiter

import (
	"testing"

	"github.com/cpuwhy/cpuwhy/internal/sys"
)

// BenchmarkOpen is the load and attach of the iterator, the kernel's BTF
// already parsed (as for every Open after a process's first).
func BenchmarkOpen(b *testing.B) {
	it, err := Open() // the first parses the kernel's BTF
	if err != nil {
		b.Skip(err)
	}
	it.Close()
	b.ReportAllocs()
	c0 := sys.ProcessCPU()
	for b.Loop() {
		it, err := Open()
		if err != nil {
			b.Fatal(err)
		}
		it.Close()
	}
	b.ReportMetric(float64(sys.ProcessCPU().Sub(c0).Total().Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// BenchmarkList is one listing of the host's threads.
func BenchmarkList(b *testing.B) {
	it, err := Open()
	if err != nil {
		b.Skip(err)
	}
	defer it.Close()
	var tasks []Task
	b.ReportAllocs()
	for b.Loop() {
		if tasks, err = it.List(tasks[:0]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(tasks)), "tasks")
}
