// Package tui is cpuwhy top's live terminal view, built on bubbletea: the
// process table refreshed every interval, sort keys, a filter, and
// drill-down from a process into its threads. It only presents Frames; all
// measuring is package top's.
package tui
