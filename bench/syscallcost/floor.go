package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
)

// floorArg runs this benchmark's own binary as the "floor" tracer: it
// attaches, on the tracepoint cpuwhy's counting program uses (tp_btf
// sys_exit), a program that does only what every program there must do
// first, drop the calls of other processes, and then returns. The rate the
// target keeps under it is the hook's own cost, the most any tracer on
// that tracepoint can keep: every other row reads as a share of it.
const floorArg = "-floor-pid"

// floorProgram is the empty program: bpf_get_current_pid_tgid, compare the
// tgid with the target's, return 0 either way.
func floorProgram(pid int) *ebpf.ProgramSpec {
	return &ebpf.ProgramSpec{
		Name:       "floor_exit",
		Type:       ebpf.Tracing,
		AttachType: ebpf.AttachTraceRawTp,
		AttachTo:   "sys_exit",
		License:    "Dual BSD/GPL",
		Instructions: asm.Instructions{
			asm.FnGetCurrentPidTgid.Call(),
			asm.RSh.Imm(asm.R0, 32),
			asm.JNE.Imm(asm.R0, int32(pid), "out"),
			asm.Mov.Imm(asm.R0, 0).WithSymbol("target"),
			asm.Return(),
			asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
			asm.Return(),
		},
	}
}

// runFloor loads and attaches the empty program for pid and holds it
// until SIGINT or SIGTERM.
func runFloor(pidArg string) error {
	pid, err := strconv.Atoi(pidArg)
	if err != nil || pid <= 0 {
		return fmt.Errorf("%s %q: not a PID", floorArg, pidArg)
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return err
	}
	prog, err := ebpf.NewProgram(floorProgram(pid))
	if err != nil {
		return fmt.Errorf("loading the empty sys_exit program: %w", err)
	}
	defer prog.Close()
	l, err := link.AttachTracing(link.TracingOptions{Program: prog})
	if err != nil {
		return fmt.Errorf("attaching the empty program to sys_exit: %w", err)
	}
	defer l.Close()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	return nil
}
