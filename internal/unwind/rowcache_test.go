package unwind

import (
	"debug/elf"
	"reflect"
	"testing"
)

// TestRowCache: rows from an Unwinder's cache are those RowAt evaluates,
// for addresses of libc and of a second table that collide in the cache,
// asked twice each in an order that evicts; errors are not kept.
func TestRowCache(t *testing.T) {
	f, err := elf.Open(libcPath(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	libc, err := elfTable(f)
	if err != nil {
		t.Fatal(err)
	}
	other, err := elfTable(f) // the same sections, another table: never each other's rows
	if err != nil {
		t.Fatal(err)
	}
	var u Unwinder
	refs := libc.ehIndex
	step := max(1, len(refs)/3000)
	for pass := range 2 {
		for i := 0; i < len(refs); i += step {
			for _, tab := range []*Table{libc, other} {
				addr := refs[i].start + uint64(pass)
				want, wantErr := tab.RowAt(addr)
				got, gotErr := u.rowAt(tab, addr)
				if (gotErr == nil) != (wantErr == nil) || !reflect.DeepEqual(got, want) {
					t.Fatalf("pass %d, %#x: cached %+v, %v; RowAt %+v, %v", pass, addr, got, gotErr, want, wantErr)
				}
			}
		}
	}
	if _, err := u.rowAt(libc, 1); err == nil {
		t.Errorf("an address no FDE covers gave a row")
	}
	for _, e := range u.rows {
		if e.table != nil && e.addr == 1 {
			t.Errorf("an error was cached")
		}
	}
	// Every entry holds what RowAt gives for its table and address.
	for _, e := range u.rows {
		if e.table == nil {
			continue
		}
		want, err := e.table.RowAt(e.addr)
		if err != nil || !reflect.DeepEqual(e.row, want) {
			t.Errorf("cache entry %#x: %+v, RowAt %+v, %v", e.addr, e.row, want, err)
		}
	}
}
