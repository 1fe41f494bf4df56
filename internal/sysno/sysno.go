package sysno

import (
	"runtime"
	"strconv"
)

// Name returns the name of syscall nr on arch ("amd64" or "arm64", as in
// GOARCH), or "syscall_N" when unknown.
func Name(arch string, nr int) string {
	if name, ok := table(arch)[nr]; ok {
		return name
	}
	return "syscall_" + strconv.Itoa(nr)
}

func table(arch string) map[int]string {
	switch arch {
	case "amd64":
		return namesAMD64
	case "arm64":
		return namesARM64
	}
	return nil
}

// Native names syscall nr on the architecture cpuwhy runs on.
func Native(nr int) string { return Name(runtime.GOARCH, nr) }
