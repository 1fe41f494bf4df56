package main

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"

	"github.com/cpuwhy/cpuwhy/test/privtest"
	"github.com/cpuwhy/cpuwhy/test/scenario"
)

// The floor program loads and attaches where cpuwhy's does.
func TestFloorProgramAttaches(t *testing.T) {
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatal(err)
	}
	prog, err := ebpf.NewProgram(floorProgram(os.Getpid()))
	if errors.Is(err, os.ErrPermission) || errors.Is(err, ebpf.ErrNotSupported) {
		privtest.Require(t, err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	l, err := link.AttachTracing(link.TracingOptions{Program: prog})
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
}

// Every row reads as a share of the floor's rate per CPU second.
func TestTableShareOfFloor(t *testing.T) {
	o := options{cpuwhy: "cpuwhy", tracers: []string{"floor", "cpuwhy"}}
	var b bytes.Buffer
	writeTable(&b, o, o.tracers, map[string][]scenario.Rates{
		"floor":  {{Wall: 0.7, CPU: 0.8}},
		"cpuwhy": {{Wall: 0.6, CPU: 0.76}},
	}, nil)
	out := b.String()
	if !strings.Contains(out, "| 60.0% | 76.0% | 95.0% |") {
		t.Errorf("no 95%% of the floor for cpuwhy in\n%s", out)
	}
	if !strings.Contains(out, "cpuwhy: 4.0 points below the floor") {
		t.Errorf("no points below the floor in\n%s", out)
	}
}
