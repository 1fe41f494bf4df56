package main

import (
	"context"
	_ "embed"
	"time"

	"github.com/cpuwhy/cpuwhy/test/scenario"
)

// pypoll is the Python target (bench/internal/pytarget): a busy poll a
// few frames deep, whose stacks `syscalls --stacks` reads the Python
// frame chain of in the kernel at each sampled call.
//
//go:embed pypoll.py
var pypoll []byte

// target is what a tracer is measured on: its own count of calls.
type target interface {
	PID() int
	Measure(ctx context.Context, window time.Duration) (scenario.Rates, error)
}
