// gostripped: a Go program built with -ldflags="-s -w", so it has no
// .symtab and no DWARF; only the pclntab the Go runtime needs for its own
// tracebacks names its functions. main.spin burns CPU in a goroutine
// locked to its own thread.
//
// Prints "ready" once spin runs.
package main

import (
	"fmt"
	"runtime"
)

var sink uint64

//go:noinline
func spin(started chan<- struct{}) {
	x := uint64(88172645463325252)
	close(started)
	for {
		for i := 0; i < 1000000; i++ {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
		}
		sink = x
	}
}

func main() {
	started := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		spin(started)
	}()
	<-started
	fmt.Println("ready")
	select {}
}
