package sysno

import (
	"runtime"
	"strconv"
)

// Name returns the name of syscall nr on arch ("amd64" or "arm64", as in
// GOARCH), or "syscall_N" when unknown.
func Name(arch string, nr int) string {
	var table map[int]string
	switch arch {
	case "amd64":
		table = namesAMD64
	case "arm64":
		table = namesARM64
	}
	if name, ok := table[nr]; ok {
		return name
	}
	return "syscall_" + strconv.Itoa(nr)
}

// Native names syscall nr on the architecture cpuwhy runs on.
func Native(nr int) string { return Name(runtime.GOARCH, nr) }
