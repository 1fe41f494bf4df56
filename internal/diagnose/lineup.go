package diagnose

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/proc"
)

// lineup starts the window once every instrument is set up, so that each
// watches the window the user asked for and the CPU accounting covers
// the same stretch. Setting up grows with the target (a perf event per
// thread and CPU, BPF programs to verify): at 5,000 threads it took
// longer than a 3 s window, which the accounting then averaged over.
//
// Each instrument calls its ready function when set up, which blocks
// until all are, and its done function when it returns, which counts as
// ready for one that failed before it got there. The last to be ready
// runs start before any is let go: the first reading of the accounting.
type lineup struct {
	mu      sync.Mutex
	pending int
	start   func()
	started chan struct{}
}

func newLineup(n int, start func()) *lineup {
	return &lineup{pending: n, start: start, started: make(chan struct{})}
}

// member returns the ready and done functions of one instrument.
func (l *lineup) member(ctx context.Context) (ready, done func()) {
	var once sync.Once
	arrive := func() { once.Do(l.arrive) }
	ready = func() {
		arrive()
		select {
		case <-l.started:
		case <-ctx.Done():
		}
	}
	return ready, arrive
}

func (l *lineup) arrive() {
	l.mu.Lock()
	l.pending--
	last := l.pending == 0
	l.mu.Unlock()
	if last {
		l.start()
		close(l.started)
	}
}

// readings takes the two readings of the accounting: the first when every
// instrument is ready, the second a duration later, or sooner when the
// context ends (Ctrl-C) or the instruments are done (the target exited).
type readings struct {
	read     func() (Reading, error)
	duration time.Duration
	// between takes the readings during the window (every): the
	// process alone, without the host's processes, which only the
	// window's two ends compare.
	between func() (Reading, error)

	began        time.Time
	first, last  Reading
	err0, err1   error
	instrumented chan struct{} // closed when the instruments are done
	taken        chan struct{} // closed when the second reading is taken
	once         sync.Once

	// every, when set, is how often a reading is also taken during the
	// window, so that a target that exits has a last reading before it
	// went: then last is the latest of those, with the host's other
	// processes of the end's reading, and exited is set.
	every  time.Duration
	exited bool
}

func newReadings(read, between func() (Reading, error), d time.Duration) *readings {
	return &readings{read: read, between: between, duration: d, instrumented: make(chan struct{}), taken: make(chan struct{})}
}

// open takes the first reading and starts the clock of the second.
func (w *readings) open(ctx context.Context) {
	w.began = time.Now()
	w.first, w.err0 = w.read()
	// Readings during the window take at most a twentieth of the time:
	// a process of thousands of threads takes tens of milliseconds to
	// read.
	every := max(w.every, 20*time.Since(w.began))
	go func() {
		// From when the first reading began: reading thousands of
		// threads takes a good part of a second.
		t := time.NewTimer(w.duration - time.Since(w.began))
		defer t.Stop()
		var tick <-chan time.Time
		if w.every > 0 && w.err0 == nil {
			ticker := time.NewTicker(every)
			defer ticker.Stop()
			tick = ticker.C
		}
		var between Reading
		var have bool
	wait:
		for {
			select {
			case <-t.C:
				break wait
			case <-ctx.Done():
				break wait
			case <-w.instrumented:
				break wait
			case <-tick:
				if r, err := w.between(); err == nil && !r.Process.Exited() {
					between, have = r, true
				}
			}
		}
		w.last, w.err1 = w.read()
		if have && (errors.Is(w.err1, proc.ErrGone) || w.err1 == nil && w.last.Process.Exited()) {
			// The host's other processes, read at the end all the
			// same, are compared over their own interval.
			between.Others, between.OthersTaken = w.last.Others, w.last.othersTaken()
			w.last, w.err1, w.exited = between, nil, true
		}
		close(w.taken)
	}()
}

// close waits for the second reading, once the instruments are done.
// The window has opened by then: an instrument that is done counts as
// ready, so the last one done opens it if none got there.
func (w *readings) close() {
	w.once.Do(func() { close(w.instrumented) })
	<-w.taken
}
