package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cpuwhy/cpuwhy/internal/symbol"
)

// childArg makes the benchmark's own binary the measured symbolizer: a
// fresh process per measurement, so that its tables are loaded for the
// first time and its peak RSS is the symbolizer's own.
const childArg = "-symcost-child"

// profileEnv names a file the child writes its CPU profile to (for
// -profile).
const profileEnv = "SYMCOST_CHILD_PROFILE"

// childRequest is what the parent sends the child on stdin.
type childRequest struct {
	PID  int
	A, B []uint64 // addresses in PID: named first, then (warm) B and A again
	Warm bool
}

// pass is the cost of one pass over a list of addresses.
type pass struct {
	Wall, CPU time.Duration
	N         int
}

// childResult is what the child prints.
type childResult struct {
	Cold, Fresh, Again pass
	ColdHWM, HWM       int64 // VmHWM in KiB after the cold pass and at the end
	Frames             []frame
}

// frame is a name given to an address, by cpuwhy or a tool.
type frame struct {
	Func, File string
	Line       int
}

func child(args []string, stdin io.Reader, stdout io.Writer) error {
	var req childRequest
	if err := json.NewDecoder(stdin).Decode(&req); err != nil {
		return fmt.Errorf("reading the request: %w", err)
	}
	if path := os.Getenv(profileEnv); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	s := symbol.NewSymbolizer(symbol.Options{})
	// Close came with lazy line tables; a symbolizer without it is
	// measured too (the figures before the change).
	if c, ok := any(s).(interface{ Close() }); ok {
		defer c.Close()
	}
	var res childResult
	var err error
	res.Frames = make([]frame, len(req.A))
	res.Cold, err = symbolizeAll(s, req.PID, req.A, res.Frames)
	if err != nil {
		return err
	}
	res.ColdHWM = vmHWM()
	if req.Warm {
		if res.Fresh, err = symbolizeAll(s, req.PID, req.B, nil); err != nil {
			return err
		}
		if res.Again, err = symbolizeAll(s, req.PID, req.A, nil); err != nil {
			return err
		}
	}
	res.HWM = vmHWM()
	return json.NewEncoder(stdout).Encode(res)
}

func symbolizeAll(s *symbol.Symbolizer, pid int, pcs []uint64, out []frame) (pass, error) {
	w0, c0 := time.Now(), cpuTime()
	for i, pc := range pcs {
		f, err := s.Symbolize(pid, pc)
		if err != nil {
			return pass{}, fmt.Errorf("symbolizing %#x in %d: %w", pc, pid, err)
		}
		if out != nil {
			out[i] = frame{f.Function, f.File, f.Line}
		}
	}
	return pass{Wall: time.Since(w0), CPU: cpuTime() - c0, N: len(pcs)}, nil
}

// cpuTime is the user and system time of the whole process (every
// thread: the garbage collector's work counts).
func cpuTime() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// vmHWM is the process's peak resident set, in KiB.
func vmHWM() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb
		}
	}
	return 0
}
