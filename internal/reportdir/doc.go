// Package reportdir is the directory where `cpuwhy watch` and `cpuwhy
// agent` keep their reports: one diagnosis is three files with one stem,
// <UTC time>-<pid>-<name>, as .json (the diagnosis's --json document,
// unchanged), .txt (its text report) and .html (its flame graph, when
// stacks were sampled).
//
// Each file is written beside its name and renamed over it, the JSON last:
// a report whose JSON is there is whole, and List shows only those. The
// directory holds at most Dir.Max reports; writing one more removes the
// oldest. Names are made of the time, the PID and the process name with
// every byte but letters, digits, '.', '_' and '-' replaced, so a name
// chosen by a target can neither leave the directory nor hide a file.
//
// Errors: Write's error wraps what the file system said (a full disk,
// a read-only directory), for the caller to count and go on.
package reportdir
