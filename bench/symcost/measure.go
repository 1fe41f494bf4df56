package main

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/objfile"
	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/symbol"
)

// target is one object, mapped in a running process, whose addresses are
// named.
type target struct {
	name    string
	about   string
	module  string // the mapped object, as the tools are given it
	symbols string // the file whose function symbols addresses are drawn from
	pid     int
	addrs   []addr // the first n are named cold; the rest measure the warm cost
}

type addr struct{ pc, vaddr uint64 }

// process is a program started for the benchmark, killed at the end (and
// with the benchmark, by its parent-death signal).
type process struct{ cmd *exec.Cmd }

func start(ctx context.Context, ready func(*bufio.Reader) error, argv ...string) (*process, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", argv[0], err)
	}
	p := &process{cmd}
	done := make(chan error, 1)
	go func() { done <- ready(bufio.NewReader(out)) }()
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		err = errors.New("not ready after 30 s")
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		p.stop()
		return nil, fmt.Errorf("%s: %w", argv[0], err)
	}
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

func (p *process) stop() {
	p.cmd.Process.Kill()
	p.cmd.Wait()
}

func readyLine(r *bufio.Reader) error {
	line, err := r.ReadString('\n')
	if err == nil && line != "ready\n" {
		err = fmt.Errorf("first line is %q", line)
	}
	return err
}

// drawAddresses picks count addresses in the functions of t.symbols, as
// mapped in t.pid: a function at random, then a byte of it at random.
func drawAddresses(t *target, count int, rng *rand.Rand) error {
	symf, err := elf.Open(t.symbols)
	if err != nil {
		return err
	}
	defer symf.Close()
	syms, err := symf.Symbols()
	if err != nil {
		return fmt.Errorf("symbols of %s: %w", t.symbols, err)
	}
	var funcs []elf.Symbol
	seen := map[uint64]bool{}
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Size > 0 && s.Value != 0 && s.Section != elf.SHN_UNDEF && !seen[s.Value] {
			seen[s.Value] = true
			funcs = append(funcs, s)
		}
	}
	if len(funcs) == 0 {
		return fmt.Errorf("%s has no function symbols", t.symbols)
	}
	mod, err := elf.Open(t.module)
	if err != nil {
		return err
	}
	defer mod.Close()
	maps, err := proc.FS{}.Maps(t.pid)
	if err != nil {
		return err
	}
	real, err := filepath.EvalSymlinks(t.module)
	if err != nil {
		return err
	}
	for tries := 0; len(t.addrs) < count; tries++ {
		if tries > 100*count {
			return fmt.Errorf("too few functions of %s are in executable mappings of %d", t.module, t.pid)
		}
		f := funcs[rng.IntN(len(funcs))]
		v := f.Value + rng.Uint64N(f.Size)
		off, ok := fileOffset(mod, v)
		if !ok {
			continue
		}
		for _, m := range maps {
			if m.Exec() && m.Path == real && off >= m.Offset && off-m.Offset < m.End-m.Start {
				t.addrs = append(t.addrs, addr{pc: m.Start + off - m.Offset, vaddr: v})
				break
			}
		}
	}
	return nil
}

func fileOffset(f *elf.File, v uint64) (uint64, bool) {
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 && v >= p.Vaddr && v-p.Vaddr < p.Filesz {
			return v - p.Vaddr + p.Off, true
		}
	}
	return 0, false
}

// runCost is what one measured process cost: its wall time from start to
// exit, its CPU (user + system, from the kernel's accounting of the
// child) and its peak RSS.
type runCost struct {
	Wall, CPU time.Duration
	RSS       int64 // KiB
}

// runMeasured runs argv with stdin and returns its cost and output.
//
// The peak RSS is the process's VmHWM read when it exits: it is traced
// (stopped only at exec and at exit, PTRACE_O_TRACEEXIT), and read at the
// exit stop, while its memory is still there. The ru_maxrss of wait4
// will not do: Linux carries a process's maxrss across exec, and Go
// starts children with vfork, so every child of the benchmark would
// report at least the benchmark's own RSS. ptrace requests come from the
// thread that started the child: the main goroutine is locked to it.
func runMeasured(stdin []byte, argv ...string) (runCost, []byte, error) {
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return runCost{}, nil, err
	}
	dir, err := os.MkdirTemp("", "symcost-run-")
	if err != nil {
		return runCost{}, nil, err
	}
	defer os.RemoveAll(dir)
	in, err := os.Create(filepath.Join(dir, "in"))
	if err != nil {
		return runCost{}, nil, err
	}
	defer in.Close()
	if _, err := in.Write(stdin); err != nil {
		return runCost{}, nil, err
	}
	in.Seek(0, 0)
	out, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		return runCost{}, nil, err
	}
	defer out.Close()
	errOut, err := os.Create(filepath.Join(dir, "err"))
	if err != nil {
		return runCost{}, nil, err
	}
	defer errOut.Close()

	t0 := time.Now()
	p, err := os.StartProcess(path, argv, &os.ProcAttr{
		Files: []*os.File{in, out, errOut},
		Sys:   &syscall.SysProcAttr{Ptrace: true, Pdeathsig: syscall.SIGKILL},
	})
	if err != nil {
		return runCost{}, nil, fmt.Errorf("starting %s: %w", argv[0], err)
	}
	pid := p.Pid
	var ws syscall.WaitStatus
	var ru syscall.Rusage
	var hwm int64
	if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil || !ws.Stopped() {
		p.Kill()
		return runCost{}, nil, fmt.Errorf("%s did not stop at exec: %v %v", argv[0], ws, err)
	}
	if err := syscall.PtraceSetOptions(pid, syscall.PTRACE_O_TRACEEXIT); err != nil {
		p.Kill()
		return runCost{}, nil, err
	}
	sig := 0
	for {
		if err := syscall.PtraceCont(pid, sig); err != nil {
			p.Kill()
			return runCost{}, nil, err
		}
		if _, err := syscall.Wait4(pid, &ws, 0, &ru); err != nil {
			return runCost{}, nil, err
		}
		if ws.Exited() || ws.Signaled() {
			break
		}
		sig = 0
		if ws.TrapCause() == syscall.PTRACE_EVENT_EXIT {
			hwm = statusHWM(pid)
		} else if ws.StopSignal() != syscall.SIGTRAP {
			sig = int(ws.StopSignal()) // a signal for it: deliver it
		}
	}
	wall := time.Since(t0)
	errData, _ := os.ReadFile(errOut.Name())
	if !ws.Exited() || ws.ExitStatus() != 0 {
		return runCost{}, nil, fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), ws, errData)
	}
	data, err := os.ReadFile(out.Name())
	if err != nil {
		return runCost{}, nil, err
	}
	return runCost{Wall: wall, CPU: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), RSS: hwm}, data, nil
}

// statusHWM reads the VmHWM of process pid, in KiB.
func statusHWM(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb
		}
	}
	return 0
}

// cpuwhyRun names t's first n addresses in a fresh process of the
// benchmark's own binary; warm adds the rest of them and the first n
// again.
func cpuwhyRun(t *target, n int, warm bool) (runCost, childResult, error) {
	self, err := os.Executable()
	if err != nil {
		return runCost{}, childResult{}, err
	}
	req := childRequest{PID: t.pid, Warm: warm}
	for i, a := range t.addrs {
		if i < n {
			req.A = append(req.A, a.pc)
		} else if warm {
			req.B = append(req.B, a.pc)
		}
	}
	in, _ := json.Marshal(req)
	cost, out, err := runMeasured(in, self, childArg)
	if err != nil {
		return runCost{}, childResult{}, err
	}
	var res childResult
	if err := json.Unmarshal(out, &res); err != nil {
		return runCost{}, childResult{}, fmt.Errorf("child's output: %w", err)
	}
	return cost, res, nil
}

// toolRun names t's first count addresses (as linked) with tool.
func toolRun(tool string, t *target, count int) (runCost, []frame, error) {
	var in bytes.Buffer
	for _, a := range t.addrs[:count] {
		fmt.Fprintf(&in, "%#x\n", a.vaddr)
	}
	cost, out, err := runMeasured(in.Bytes(), tool, "-f", "-e", t.module)
	if err != nil {
		return runCost{}, nil, err
	}
	frames, err := parseAddr2line(out, count)
	return cost, frames, err
}

// parseAddr2line reads the output of addr2line -f and its look-alikes: a
// line with the function, a line with file:line (eu-addr2line adds
// :column, binutils a discriminator), "??" when unknown.
func parseAddr2line(out []byte, count int) ([]frame, error) {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) != 2*count {
		return nil, fmt.Errorf("%d lines of output for %d addresses", len(lines), count)
	}
	frames := make([]frame, count)
	for i := range frames {
		fn, pos := lines[2*i], lines[2*i+1]
		if fn != "??" {
			frames[i].Func = fn
		}
		pos, _, _ = strings.Cut(pos, " (discriminator")
		parts := strings.Split(pos, ":")
		if len(parts) >= 3 {
			if _, err := strconv.Atoi(parts[len(parts)-1]); err == nil {
				if _, err := strconv.Atoi(parts[len(parts)-2]); err == nil {
					parts = parts[:len(parts)-1] // file:line:column
				}
			}
		}
		if len(parts) >= 2 {
			line, _ := strconv.Atoi(parts[len(parts)-1])
			file := strings.Join(parts[:len(parts)-1], ":")
			if file != "??" && line > 0 {
				frames[i].File, frames[i].Line = file, line
			}
		}
	}
	return frames, nil
}

// agreement is the share of frames of a naming the same position as b
// (base name of the file and line, among those b gives one for: with),
// and the same function (see funcName).
func agreement(a, b []frame) (pos, fn, with float64) {
	var samePos, sameFn, has int
	for i := range a {
		if b[i].Line > 0 {
			has++
			if a[i].Line == b[i].Line && filepath.Base(a[i].File) == filepath.Base(b[i].File) {
				samePos++
			}
		}
		if funcName(a[i].Func) == funcName(b[i].Func) {
			sameFn++
		}
	}
	n := float64(len(a))
	if has == 0 {
		return 0, float64(sameFn) / n, 0
	}
	return float64(samePos) / float64(has), float64(sameFn) / n, float64(has) / n
}

// funcName is a function name as cpuwhy gives it: the tools print
// symbols mangled (without -C), and cpuwhy demangles without parameters
// or template arguments.
func funcName(s string) string { return symbol.Demangle(s) }

// buildID gives the build-id of the object at path, "" when none.
func buildID(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	o, err := objfile.Parse(f, -1)
	if err != nil {
		return ""
	}
	return o.BuildID
}
