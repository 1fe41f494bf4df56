// Package cli holds cpuwhy's commands. Each command is a constructor that
// binds flags to an options struct and a run function that takes that
// struct, so flag parsing and behaviour are tested apart, with the I/O
// streams captured.
//
// Errors returned by commands are one-line messages for the user; Main maps
// them to exit codes: 2 for usage errors, 1 for everything else.
package cli
