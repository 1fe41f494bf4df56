// Package symbol names code addresses of a process.
//
// For now it names each address by the module it falls in and its offset
// in that module's file ("libnat.so+0x1139"): a form that stays meaningful
// when the process is stripped or gone, and that a later symbolization
// (ELF symbols, DWARF, build-id lookups) can resolve. An address no
// mapping covers is said to be unmapped, never printed bare.
package symbol
