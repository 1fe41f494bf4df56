package unwind

import (
	"errors"
	"fmt"
)

// FormatError is malformed call frame information: what was wrong and at
// which byte offset of which section.
type FormatError struct {
	Section string // ".eh_frame", ".eh_frame_hdr" or ".debug_frame"
	Off     int    // byte offset in the section
	Msg     string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("%s at offset %#x: %s", e.Section, e.Off, e.Msg)
}

// ErrNoFDE is returned when no FDE covers an address: the code there has
// no call frame information (hand-written assembly, JIT code, or a
// stripped .eh_frame).
var ErrNoFDE = errors.New("no FDE covers the address")

// ErrUnsupported is returned for valid call frame information that this
// package does not evaluate: DWARF expressions other than the .plt
// pattern, augmentations it does not know, indirect pointer encodings.
var ErrUnsupported = errors.New("unsupported call frame information")

// ErrTooComplex is returned when a CFA program runs past maxSteps
// instructions or nests remember_state deeper than maxStateStack.
var ErrTooComplex = errors.New("call frame program too long")
