package diagnose

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/sys"
	"github.com/cpuwhy/cpuwhy/internal/syscalls"
	"github.com/cpuwhy/cpuwhy/internal/syscalls/ebpf"
	"github.com/cpuwhy/cpuwhy/internal/target"
	"github.com/cpuwhy/cpuwhy/test/privtest"
)

// The process's other work during a diagnosis (a watch's scans, an
// agent's HTTP server), told by Options.OtherCPU, is not billed to the
// diagnosis: a goroutine burns CPU on its own thread through the window,
// as a scan would. Told of it, cpu_s is the process's CPU less the
// burner's, to the rounding of the clocks; not told, cpu_s holds it all.
// Both runs compare figures of one run, whatever the machine's speed.
func TestOtherCPUNotBilled(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	tg := target.Target{PID: cmd.Process.Pid, Name: "sleep"}
	for _, told := range []bool{true, false} {
		var burned atomic.Int64
		stop, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			last := sys.ThreadCPU().Total()
			for {
				select {
				case <-stop:
					return
				default:
				}
				for i := 0; i < 1e5; i++ {
					_ = i * i
				}
				now := sys.ThreadCPU().Total()
				burned.Add(int64(now - last))
				last = now
			}
		}()
		opts := Options{
			FS: proc.FS{}, Duration: time.Second,
			Tracers: []syscalls.Candidate{{Mechanism: syscalls.EBPF, New: func() syscalls.Tracer { return ebpf.New() }}},
		}
		if told {
			opts.OtherCPU = func() time.Duration { return time.Duration(burned.Load()) }
		}
		c0, b0 := sys.ProcessCPU().Total(), burned.Load()
		res, err := Run(context.Background(), tg, opts)
		c1, b1 := sys.ProcessCPU().Total(), burned.Load()
		close(stop)
		<-done
		if errors.Is(err, syscalls.ErrNotSupported) || errors.Is(err, os.ErrPermission) {
			privtest.Require(t, err.Error())
		}
		if err != nil {
			t.Fatal(err)
		}
		process, burner := c1-c0, time.Duration(b1-b0)
		billed := time.Duration(res.Report.Cpuwhy.CPU * float64(time.Second))
		t.Logf("told %v: process %v, burner %v, cpu_s %v", told, process, burner, billed)
		if burner < 100*time.Millisecond {
			t.Fatalf("the burner got %v of CPU in a 1 s window: too little to tell", burner)
		}
		if told && (billed > process-burner+20*time.Millisecond || billed+burner < process-200*time.Millisecond) {
			t.Errorf("told of the burner: cpu_s %v, want the process's %v less the burner's %v", billed, process, burner)
		}
		if !told && billed < burner {
			t.Errorf("not told of the burner: cpu_s %v, under the burner's own %v", billed, burner)
		}
	}
}
