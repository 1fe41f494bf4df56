package ebpf

import (
	"fmt"
	"os"
	"testing"

	"github.com/cpuwhy/cpuwhy/internal/syscalls"
	"github.com/cpuwhy/cpuwhy/test/privtest"
)

// BenchmarkReuse is what a kept tracer does before each trace (the
// agent's diagnoses): empty the tables of a set loaded with the
// diagnosis's options and set the target.
func BenchmarkReuse(b *testing.B) {
	objs, err := load(os.Getpid(), withDefaults(syscalls.Options{TimeEvery: syscalls.DefaultTimeEvery}))
	if err != nil {
		privtest.Require(b, fmt.Sprintf("loading the programs: %v", err))
	}
	defer objs.Close()
	b.Run("all", func(b *testing.B) {
		for b.Loop() {
			if err := reuse(objs, os.Getpid()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("inflight", func(b *testing.B) {
		for b.Loop() {
			if err := emptyInflight(objs.Inflight); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("inflight-batch", func(b *testing.B) {
		for b.Loop() {
			if err := zeroArray(objs.Inflight); err != nil {
				b.Fatal(err)
			}
		}
	})
}
