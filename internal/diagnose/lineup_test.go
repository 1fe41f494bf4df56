package diagnose

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestLineup: the start runs once, when the last instrument is ready or
// done, before any ready returns; an instrument that failed before it
// got ready does not hold the others.
func TestLineup(t *testing.T) {
	for _, tt := range []struct {
		name  string
		ready []bool // per member: calls ready (else only done)
	}{
		{"both ready", []bool{true, true}},
		{"one fails before ready", []bool{true, false}},
		{"both fail", []bool{false, false}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var starts, released atomic.Int32
			l := newLineup(len(tt.ready), func() {
				if released.Load() != 0 {
					t.Error("a member was let go before the start")
				}
				starts.Add(1)
			})
			var wg sync.WaitGroup
			for _, r := range tt.ready {
				ready, done := l.member(context.Background())
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer done()
					if r {
						ready()
						released.Add(1)
					}
				}()
			}
			finished := make(chan struct{})
			go func() { wg.Wait(); close(finished) }()
			select {
			case <-finished:
			case <-time.After(10 * time.Second):
				t.Fatal("members still waiting: the lineup hangs")
			}
			if starts.Load() != 1 {
				t.Errorf("start ran %d times, want once", starts.Load())
			}
		})
	}
	// A canceled context lets a waiting member go.
	ctx, cancel := context.WithCancel(context.Background())
	l := newLineup(2, func() {})
	ready, _ := l.member(ctx)
	cancel()
	ready()
}
