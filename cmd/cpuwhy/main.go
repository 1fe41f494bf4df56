// Command cpuwhy tells why a process or a container is burning CPU.
package main

import (
	"os"

	"github.com/cpuwhy/cpuwhy/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], cli.Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}))
}
