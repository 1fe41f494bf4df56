// Package sysno names system calls by number, for x86_64 and arm64.
//
// The tables are generated from the Linux UAPI headers of Debian's
// linux-libc-dev (asm/unistd_64.h for x86_64, asm-generic/unistd.h as arm64
// uses it) by gen.go; run `go generate ./internal/sysno` after a header
// update. Numbers the table does not know are named "syscall_N".
package sysno

//go:generate go run gen.go -x86 /usr/include/x86_64-linux-gnu/asm/unistd_64.h -generic /usr/include/asm-generic/unistd.h -o tables.go
